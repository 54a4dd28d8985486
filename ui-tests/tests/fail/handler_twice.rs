use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn first(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_data]
    fn second(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
