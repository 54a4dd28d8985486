use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_connect]
    fn connect(&mut self, _conn: &mut Conn) {}
}

fn main() {}
