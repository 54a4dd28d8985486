//! Route attributes end to end: parameters, static-before-parameter, 404, 405 with Allow, HEAD
//! through GET routes, and the on_request fallback.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::http::{Reply, read_reply};
use smoke::prelude::*;

#[derive(Default)]
struct Routes;

#[smoke::server(http = 8080, threads = 1)]
impl Routes {
    #[get("/")]
    fn index(&mut self, _req: &Request, res: &mut Response) {
        res.text("index");
    }
    #[get("/users/:id")]
    fn user(&mut self, req: &Request, res: &mut Response) {
        res.text(&format!("user {}", req.param("id").unwrap_or("?")));
    }
    #[get("/users/me")]
    fn me(&mut self, _req: &Request, res: &mut Response) {
        res.text("me");
    }
    #[post("/users/:id/posts/:post")]
    fn post(&mut self, req: &Request, res: &mut Response) {
        res.status(201).text(&format!("{}:{}", req.param("id").unwrap_or("?"), req.param("post").unwrap_or("?")));
    }
    #[delete("/users/:id")]
    fn remove(&mut self, _req: &Request, res: &mut Response) {
        res.status(204);
    }
    #[route(PATCH, "/users/:id")]
    fn patch(&mut self, _req: &Request, res: &mut Response) {
        res.text("patched");
    }
}

#[derive(Default)]
struct WithFallback;

#[smoke::server(http = 8080, threads = 1)]
impl WithFallback {
    #[get("/known")]
    fn known(&mut self, _req: &Request, res: &mut Response) {
        res.text("known");
    }
    #[on_request]
    fn anything_else(&mut self, req: &Request, res: &mut Response) {
        res.status(418).text(req.path());
    }
}

fn ask(stream: &mut TcpStream, reader: &mut BufReader<TcpStream>, request: &str) -> Reply {
    stream.write_all(request.as_bytes()).unwrap();
    read_reply(reader, request.starts_with("HEAD")).expect("a response")
}

fn connect(server: &smoke::ServerHandle) -> (TcpStream, BufReader<TcpStream>) {
    let stream = TcpStream::connect(server.local_addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

#[test]
fn routes_match_segments_and_methods() {
    let server = Routes::spawn(common::on_loopback(Routes::config(), "http")).unwrap();
    let (mut s, mut r) = connect(&server);
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let reply = ask(&mut s, &mut r, &get("/"));
    assert_eq!((reply.status, &reply.body[..]), (200, &b"index"[..]));
    assert_eq!(ask(&mut s, &mut r, &get("/users/42")).body, b"user 42");
    assert_eq!(ask(&mut s, &mut r, &get("/users/me")).body, b"me", "a static segment wins over a parameter");
    assert_eq!(ask(&mut s, &mut r, &get("/users/mex")).body, b"user mex", "a static route matches whole segments");
    assert_eq!(ask(&mut s, &mut r, &get("/users/42?tab=posts")).body, b"user 42", "the query is not part of the path");
    let created = ask(&mut s, &mut r, "POST /users/7/posts/99 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((created.status, &created.body[..]), (201, &b"7:99"[..]));
    assert_eq!(ask(&mut s, &mut r, "DELETE /users/7 HTTP/1.1\r\nHost: x\r\n\r\n").status, 204);
    assert_eq!(ask(&mut s, &mut r, "PATCH /users/7 HTTP/1.1\r\nHost: x\r\n\r\n").body, b"patched");

    let head = ask(&mut s, &mut r, "HEAD /users/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("6")), "HEAD goes to the GET route");
    let head = ask(&mut s, &mut r, "HEAD /users/me HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("2")), "also a route without parameters");
    let absolute = ask(&mut s, &mut r, "GET http://x/users/me?a=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(absolute.body, b"me", "an absolute-form target names its path");
    let lower = ask(&mut s, &mut r, "get /users/me HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(lower.status, 405, "methods are case-sensitive");

    for path in ["/nope", "/users", "/users/7/extra", "/users/", "/users/me/", "//", "/users//me"] {
        assert_eq!(ask(&mut s, &mut r, &get(path)).status, 404, "{path}");
    }
    let not_allowed = ask(&mut s, &mut r, "PUT /users/7 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.header("Allow"), Some("DELETE, GET, HEAD, PATCH"));
    let not_allowed = ask(&mut s, &mut r, "POST /users/me HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(not_allowed.header("Allow"), Some("DELETE, GET, HEAD, PATCH"), "a parameterless path answers 405 too");
}

#[test]
fn on_request_answers_what_no_route_matches() {
    let server = WithFallback::spawn(common::on_loopback(WithFallback::config(), "http")).unwrap();
    let (mut s, mut r) = connect(&server);
    assert_eq!(ask(&mut s, &mut r, "GET /known HTTP/1.1\r\nHost: x\r\n\r\n").body, b"known");
    let other = ask(&mut s, &mut r, "GET /elsewhere HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((other.status, &other.body[..]), (418, &b"/elsewhere"[..]));
    assert_eq!(ask(&mut s, &mut r, "POST /known HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").status, 405);
}
