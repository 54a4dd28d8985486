use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090, max_connection = 10, bind = "everywhere")]
impl S {
    #[on_data]
    fn data(&self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[on_closed]
    fn close(&mut self, _conn: &mut Conn, _why: CloseReason) {}
}

fn main() {}
