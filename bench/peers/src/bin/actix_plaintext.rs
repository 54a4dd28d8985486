//! actix-web answering /plaintext, with the given number of workers.
use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8082);
    let threads: usize = std::env::args().nth(2).and_then(|t| t.parse().ok()).unwrap_or(1);
    let server = HttpServer::new(|| {
        App::new().route(
            "/plaintext",
            web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("Hello, World!") }),
        )
    })
    .workers(threads)
    .backlog(4096)
    .bind(("127.0.0.1", port))?
    .run();
    println!("ready");
    server.await
}
