use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn) -> usize {
        0
    }

    #[on_write]
    fn drained(&mut self, _conn: &mut Conn, _extra: u8) {}
}

fn main() {}
