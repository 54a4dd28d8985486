use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(http = 8080)]
impl S {
    #[on_connect]
    fn connect(&mut self, _conn: &mut Conn) {}
}

fn main() {}
