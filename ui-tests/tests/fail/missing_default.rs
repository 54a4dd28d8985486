use smoke::prelude::*;

struct NoDefault {
    count: u32,
}

#[smoke::server(tcp = 9090)]
impl NoDefault {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        self.count += 1;
        input.len()
    }
}

fn main() {}
