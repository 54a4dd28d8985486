use smoke::prelude::*;

struct S;

impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
