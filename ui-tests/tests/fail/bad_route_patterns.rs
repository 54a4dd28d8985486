use smoke::prelude::*;

#[derive(Default)]
struct S;

#[smoke::server(http = 8080)]
impl S {
    #[get("users")]
    fn a(&mut self, _req: &Request, _res: &mut Response) {}
    #[post("/a//b")]
    fn b(&mut self, _req: &Request, _res: &mut Response) {}
    #[put("/x/:1")]
    fn c(&mut self, _req: &Request, _res: &mut Response) {}
    #[delete("/:a/:a")]
    fn d(&mut self, _req: &Request, _res: &mut Response) {}
    #[get]
    fn e(&mut self, _req: &Request, _res: &mut Response) {}
    #[route("/only-a-path")]
    fn f(&mut self, _req: &Request, _res: &mut Response) {}
}

fn main() {}
