// An HTTP server with every HTTP key, routes of each attribute form, and an on_request fallback,
// next to a TCP listener served by the same session type.
use smoke::prelude::*;

#[derive(Default)]
struct Api;

#[smoke::server(
    http = "127.0.0.1:8080",
    tcp = 9000,
    max_header_bytes = 4096,
    max_headers = 32,
    max_body = 65536,
    header_timeout_ms = 2500,
    keep_alive_timeout_ms = 75000,
    body_timeout_ms = 20000,
    idle_timeout_ms = 5000,
)]
impl Api {
    #[get("/")]
    fn index(&mut self, _req: &Request, res: &mut Response) {
        res.text("index");
    }
    #[smoke::get("/users/:id")]
    fn user(&mut self, req: &Request, res: &mut Response) {
        res.text(req.param("id").unwrap_or(""));
    }
    #[post("/users")]
    fn create(&mut self, _req: &Request, res: &mut Response) {
        res.status(201);
    }
    #[put("/users/:id")]
    fn replace(&mut self, _req: &Request, _res: &mut Response) {}
    #[delete("/users/:id")]
    fn remove(&mut self, _req: &Request, res: &mut Response) {
        res.status(204);
    }
    #[route(PATCH, "/users/:id/name")]
    fn rename(&mut self, _req: &Request, _res: &mut Response) {}
    #[route("OPTIONS", "/users")]
    fn options(&mut self, _req: &Request<'_>, _res: &mut Response) {}
    #[on_request]
    fn fallback(&mut self, _req: &Request, res: &mut Response) {
        res.status(404).text("no such page");
    }
    #[on_data]
    fn raw(&mut self, conn: &mut Conn, input: &[u8]) -> usize {
        conn.write(input);
        input.len()
    }
    #[on_close]
    fn closed(&mut self, _conn: &mut Conn, _why: CloseReason) {}
}

fn main() {
    let config = Api::config();
    assert_eq!(config.listeners().len(), 2);
    assert_eq!(config.listeners()[0].0, smoke::Protocol::Http);
    assert_eq!(config.http_limits().max_header_bytes, 4096);
    assert_eq!(config.http_limits().max_headers, 32);
    assert_eq!(config.http_limits().max_body, 65536);
    assert_eq!(config.http_limits().header_timeout, std::time::Duration::from_millis(2500));
    assert_eq!(config.http_limits().keep_alive_timeout, std::time::Duration::from_secs(75));
    assert_eq!(config.http_limits().body_timeout, std::time::Duration::from_secs(20));
    assert_eq!(config.runtime().idle_timeout, Some(std::time::Duration::from_secs(5)));
}
