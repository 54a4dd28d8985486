// A type that merely shares the name passes the syntactic check; the compiler then rejects the
// forwarding call, and the error points at the user's method.

struct Conn;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9090)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
