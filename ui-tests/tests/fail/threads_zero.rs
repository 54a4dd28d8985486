use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090, threads = 0, max_connections = 0)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
