use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(http = 8080)]
impl S {
    #[get("/")]
    fn index(&mut self, _req: &Request) -> String {
        String::new()
    }
}

fn main() {}
