struct S;

#[smoke::server(tcp = 9090)]
impl Default for S {
    fn default() -> Self {
        S
    }
}

fn main() {}
