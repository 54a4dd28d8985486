use smoke::prelude::*;

#[derive(Default)]
struct S;

// A certificate is a PEM file's path; compression is on or off.
#[smoke::server(https = 8443, tls_cert = 443, tls_key = ["key.pem", ""], ws_deflate = "yes")]
impl S {
    #[on_request]
    fn request(&mut self, _req: &Request, res: &mut Response) {
        res.text("hi");
    }
}

fn main() {}
