use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn data(&self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_close]
    fn close(self, _conn: &mut Conn, _why: CloseReason) {}
}

fn main() {}
