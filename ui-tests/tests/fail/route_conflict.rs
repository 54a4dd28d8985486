use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(http = 8080)]
impl S {
    #[get("/users/:id")]
    fn by_id(&mut self, _req: &Request, _res: &mut Response) {}

    #[get("/users/:name")]
    fn by_name(&mut self, _req: &Request, _res: &mut Response) {}

    // Same path, another method: no conflict. A static segment: no conflict either.
    #[post("/users/:id")]
    fn update(&mut self, _req: &Request, _res: &mut Response) {}
    #[get("/users/me")]
    fn me(&mut self, _req: &Request, _res: &mut Response) {}
}

fn main() {}
