//! Routes with parameters: a tiny in-memory notes API, showing 404 for unknown paths and 405
//! (with `Allow`) for a known path asked with another method.
//!
//! ```text
//! cargo run -p smoke-examples --bin routes
//! curl -X POST --data 'buy milk' http://127.0.0.1:8081/notes/1
//! curl http://127.0.0.1:8081/notes/1
//! curl -i -X PUT http://127.0.0.1:8081/notes      # 405, Allow: GET, HEAD
//! ```

use std::collections::BTreeMap;
use std::sync::Mutex;

use smoke::prelude::*;

/// Shared by all workers: an example store, not a fast one.
static NOTES: Mutex<BTreeMap<u64, String>> = Mutex::new(BTreeMap::new());

#[derive(Default)]
struct Notes;

fn note_id(req: &Request) -> Option<u64> {
    req.param("id")?.parse().ok()
}

// ANCHOR: routes
#[smoke::server(http = 8081, threads = 2)]
impl Notes {
    #[get("/notes")]
    fn list(&mut self, _req: &Request, res: &mut Response) {
        let notes = NOTES.lock().unwrap();
        let lines: Vec<String> = notes.iter().map(|(id, text)| format!("{id}: {text}")).collect();
        res.text(&lines.join("\n"));
    }

    #[get("/notes/:id")]
    fn read(&mut self, req: &Request, res: &mut Response) {
        match note_id(req).and_then(|id| NOTES.lock().unwrap().get(&id).cloned()) {
            Some(text) => res.text(&text),
            None => res.status(404).text("no such note"),
        };
    }

    #[post("/notes/:id")]
    fn write(&mut self, req: &Request, res: &mut Response) {
        let (Some(id), Ok(text)) = (note_id(req), std::str::from_utf8(req.body())) else {
            res.status(400).text("the id is a number and the note is UTF-8 text");
            return;
        };
        NOTES.lock().unwrap().insert(id, text.to_owned());
        res.status(201);
    }

    #[delete("/notes/:id")]
    fn delete(&mut self, req: &Request, res: &mut Response) {
        let removed = note_id(req).and_then(|id| NOTES.lock().unwrap().remove(&id));
        res.status(if removed.is_some() { 204 } else { 404 });
    }
}
// ANCHOR_END: routes

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Notes::serve()
}
