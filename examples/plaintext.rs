//! The TechEmpower-style benchmark server: `/plaintext` and `/json`, with the `Server` and `Date`
//! headers those benchmarks require.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin plaintext
//! wrk -t1 -c100 -d10s http://127.0.0.1:8080/plaintext
//! ```

use smoke::prelude::*;

#[derive(Default)]
struct Bench;

// ANCHOR: plaintext
#[smoke::server(http = 8080)]
impl Bench {
    #[get("/plaintext")]
    fn plaintext(&mut self, _req: &Request, res: &mut Response) {
        res.text("Hello, World!").header("Server", "smoke");
    }

    #[get("/json")]
    fn json(&mut self, _req: &Request, res: &mut Response) {
        // Already-serialised bytes: the response is a fixed document.
        res.json(br#"{"message":"Hello, World!"}"#).header("Server", "smoke");
    }
}
// ANCHOR_END: plaintext

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Bench::serve()
}
