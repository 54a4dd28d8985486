use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = [70000, "127.0.0.1:99999"])]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
