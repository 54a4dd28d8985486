use smoke::prelude::*;

struct S;

#[smoke::server(tcp = 9000)]
impl S {
    #[on_connect]
    fn open(_conn: &mut Conn) -> Option<S> {
        Some(S)
    }

    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
