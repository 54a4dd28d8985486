use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &str) -> usize {
        input.len()
    }

    #[on_close]
    fn close(&mut self, _conn: &Conn, _why: CloseReason) {}
}

fn main() {}
