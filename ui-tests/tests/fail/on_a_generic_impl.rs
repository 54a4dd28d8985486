use smoke::prelude::*;

#[derive(Default)]
struct S<T>(T);

#[smoke::server(tcp = 9090)]
impl<T: Default + 'static> S<T> {
    #[on_data]
    fn data(&mut self, _conn: &mut Conn, input: &[u8]) -> usize {
        input.len()
    }
}

fn main() {}
