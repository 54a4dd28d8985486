use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(tcp = 9000)]
impl S {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }

    #[get("/")]
    fn index(&mut self, _req: &Request, _res: &mut Response) {}
}

fn main() {}
