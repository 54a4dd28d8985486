use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, _input: &[u8]) {}

    #[on_connect]
    fn connect(&mut self, _conn: &mut Conn) -> bool {
        true
    }
}

fn main() {}
