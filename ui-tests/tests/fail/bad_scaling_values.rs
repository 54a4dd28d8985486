use smoke::prelude::*;

#[derive(Default)]
struct S;

// A cluster is a nats:// address; the PROXY protocol is on or off; a server runs in at least one
// process.
#[smoke::server(http = 8080, cluster = "127.0.0.1:4222", proxy_protocol = "on")]
impl S {
    #[on_request]
    fn request(&mut self, _req: &Request, res: &mut Response) {
        res.text("hi");
    }
}

#[derive(Default)]
struct T;

#[smoke::server(http = 8081, cluster = 4222)]
impl T {
    #[on_request]
    fn request(&mut self, _req: &Request, res: &mut Response) {
        res.text("hi");
    }
}

#[derive(Default)]
struct U;

#[smoke::server(http = 8082, processes = 0)]
impl U {
    #[on_request]
    fn request(&mut self, _req: &Request, res: &mut Response) {
        res.text("hi");
    }
}

fn main() {}
