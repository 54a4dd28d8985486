#[smoke::server(tcp = 9090)]
struct S;

fn main() {}
