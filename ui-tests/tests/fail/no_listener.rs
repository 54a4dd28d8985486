

#[derive(Default)]
struct S;

#[smoke::server(threads = 2)]
impl S {
    fn helper(&self) {}
}

fn main() {}
