use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(crate = 7, tcp = 9090)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
