//! The layout's rules, checked on the source: each layer imports only those below it, and no
//! file or function grows past what a reader can hold.
//!
//! Layers, by folder of `smoke/src`: `sys/` (the only `unsafe`), `rt/` (the protocol-agnostic
//! runtime), `proto/` (sans-IO protocol machines: `http/`, `ws/`, `ring.rs`), `driver/`
//! (protocols joined to the runtime), and the face (`lib.rs`, `config.rs`, `server.rs`,
//! `handle.rs`). `stats.rs` is plain data every layer may name, and names nothing itself.
//!
//! An import is any `crate::` or `super::` path outside comments, as `imports.py` reads them;
//! a `#[cfg(test)] mod tests` block is left out (a test may build what it checks from any layer).

use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layer {
    Sys,
    Rt,
    /// `proto/`, with the protocol: `http`, `ws`, `ring`, or "" for `proto/mod.rs`.
    Proto(&'static str),
    Driver,
    Stats,
    Face,
}

/// The layer of the module at `module` (its path from the crate root, e.g. `["rt", "conn"]`).
fn layer(module: &[String]) -> Layer {
    match module.first().map(String::as_str) {
        Some("sys") => Layer::Sys,
        Some("rt") => Layer::Rt,
        Some("proto") => Layer::Proto(match module.get(1).map(String::as_str) {
            Some("http") => "http",
            Some("ws") => "ws",
            Some("ring") => "ring",
            _ => "",
        }),
        Some("driver") => Layer::Driver,
        Some("stats") => Layer::Stats,
        _ => Layer::Face,
    }
}

/// Why an import from `from` to `to` breaks the layering, if it does.
fn forbidden(from: Layer, to: Layer) -> Option<&'static str> {
    match (from, to) {
        (Layer::Sys, Layer::Sys) | (Layer::Stats, Layer::Stats) => None,
        (Layer::Sys, _) => Some("sys imports nothing else of the crate"),
        (Layer::Stats, _) => Some("stats.rs is plain data and imports nothing"),
        (Layer::Rt, Layer::Proto(_) | Layer::Driver | Layer::Face) => {
            Some("the runtime knows no protocol, driver or face")
        }
        (Layer::Proto(_), Layer::Rt | Layer::Sys | Layer::Driver | Layer::Face) => {
            Some("protocol machines import only proto and stats")
        }
        (Layer::Proto("http"), Layer::Proto("ws")) => Some("HTTP knows nothing of WebSocket"),
        (Layer::Driver, Layer::Face) => Some("the driver knows no face"),
        _ => None,
    }
}

/// `text` without comments, and without its `#[cfg(test)] mod tests` block (by convention the
/// file's last item).
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |end| &after[end + 2..]);
        } else if rest.starts_with("//") {
            rest = rest.find('\n').map_or("", |end| &rest[end..]);
        } else if rest.starts_with('"') {
            // Skip string literals: a message may mention `crate::` without importing it.
            let end = rest[1..].char_indices().find(|&(i, c)| c == '"' && !rest[1..i + 1].ends_with('\\'));
            code.push_str("\"\"");
            rest = end.map_or("", |(i, _)| &rest[i + 2..]);
        } else {
            let next = rest.char_indices().nth(1).map_or(rest.len(), |(i, _)| i);
            code.push_str(&rest[..next]);
            rest = &rest[next..];
        }
    }
    code
}

/// Every module path a file's code names, as `crate::`/`super::` paths resolve from `module`
/// (`super` is the module's parent: for `rt/conn.rs` it is `rt`, for `rt/worker/mod.rs` too).
/// `crate::a::{b, c::d}` names `a::b` and `a::c::d`.
fn imports(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let starts_word = code[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if !starts_word {
            continue;
        }
        let path: String = code[at..].chars().take_while(|c| c.is_alphanumeric() || "_:{}, \n".contains(*c)).collect();
        let mut base: Vec<String> =
            if path.starts_with("crate::") { Vec::new() } else { module[..module.len().saturating_sub(1)].to_vec() };
        let tail = path.split_once("::").map_or("", |(_, tail)| tail);
        let (prefix, items) = match tail.split_once('{') {
            Some((prefix, group)) => (prefix, group.split('}').next().unwrap_or_default().split(',').collect()),
            None => (tail, vec![""]),
        };
        base.extend(prefix.split("::").map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        for item in items {
            let mut target = base.clone();
            target.extend(item.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "self").map(str::to_owned));
            found.push(target);
        }
    }
    found
}

/// The module path of `file` under `src`: `rt/worker/mod.rs` is `["rt", "worker"]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Every forbidden import in `files` (path under `src`, text), one sentence each.
fn violations(src: &Path, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, text) in files {
        let module = module_of(src, file);
        let from = layer(&module);
        for target in imports(&code_of(text), &module) {
            if let Some(why) = forbidden(from, layer(&target)) {
                let shown = file.strip_prefix(src).unwrap_or(file).display();
                found.push(format!(
                    "{shown} imports crate::{} ({from:?} -> {:?}): {why}",
                    target.join("::"),
                    layer(&target)
                ));
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

fn rust_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            files.push((path, text));
        }
    }
    files.sort();
    files
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let src = workspace().join("smoke/src");
    let files = rust_files(&src);
    assert!(files.len() > 40, "read the crate's sources");
    let found = violations(&src, &files);
    assert!(found.is_empty(), "forbidden imports:\n{}", found.join("\n"));
}

#[test]
fn the_check_catches_every_forbidden_arrow() {
    let src = Path::new("/src");
    let cases = [
        ("sys/epoll.rs", "use crate::rt::conn::Conn;"),
        ("sys/mod.rs", "pub(crate) use super::stats::Stats;"),
        ("stats.rs", "use crate::rt::token::ConnId;"),
        ("rt/conn.rs", "use crate::proto::Sink;"),
        ("rt/worker/stream.rs", "fn f() { crate::driver::ws::publish(); }"),
        ("rt/spawn.rs", "use crate::{config::Config, rt::error::Error};"),
        ("proto/http/connection.rs", "use crate::rt::conn::Conn;"),
        ("proto/ws/codec.rs", "use crate::sys::Stream;"),
        ("proto/http/message.rs", "use crate::http::Request;"),
        ("proto/http/mod.rs", "use super::ws::Message;"),
        ("proto/ring.rs", "use crate::driver::Stream;"),
        ("driver/http.rs", "use crate::server::Server;"),
        ("driver/mod.rs", "use super::config::Config;"),
    ];
    for (file, text) in cases {
        let found = violations(src, &[(src.join(file), text.to_owned())]);
        assert_eq!(found.len(), 1, "{file}: `{text}` should be one violation, found {found:?}");
    }
    let allowed = [
        ("rt/conn.rs", "use crate::sys::Stream; use crate::stats::Counters; use super::buf::Output;"),
        ("proto/ws/handshake.rs", "use crate::proto::http::Request; use crate::stats::StatsSource;"),
        ("driver/http.rs", "use crate::{proto, rt::conn::Conn}; use super::ws;"),
        ("server.rs", "use crate::driver::Stream; use crate::rt::error::Error;"),
        ("rt/pubsub.rs", "// see crate::proto::ws for the frames\nlet s = \"crate::driver\";"),
        ("proto/http/head.rs", "#[cfg(test)]\nmod tests {\n    use crate::rt::conn::Conn;\n}"),
    ];
    for (file, text) in allowed {
        let found = violations(src, &[(src.join(file), text.to_owned())]);
        assert!(found.is_empty(), "{file}: `{text}` is allowed, found {found:?}");
    }
}

/// A function's extent in rustfmt'd code: from its `fn` line to the first line that closes at
/// the `fn` line's indentation.
fn long_functions(text: &str, limit: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let signature = trimmed
            .strip_prefix("pub(crate) ")
            .or_else(|| trimmed.strip_prefix("pub(super) "))
            .or_else(|| trimmed.strip_prefix("pub "))
            .unwrap_or(trimmed);
        let signature = signature.strip_prefix("const ").unwrap_or(signature);
        let signature = signature.strip_prefix("unsafe ").unwrap_or(signature);
        let Some(rest) = signature.strip_prefix("fn ") else { continue };
        if line.trim_end().ends_with(';') {
            continue;
        }
        let indent = &line[..line.len() - trimmed.len()];
        let close = format!("{indent}}}");
        if let Some(end) = lines[start + 1..].iter().position(|l| l.trim_end() == close) {
            let length = end + 2;
            if length > limit {
                let name = rest.split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap_or_default();
                found.push((start + 1, name.to_owned(), length));
            }
        }
    }
    found
}

#[test]
fn no_source_file_over_600_lines_and_no_function_over_80() {
    let mut found = Vec::new();
    for crate_src in ["smoke/src", "smoke-macros/src", "smoke-rules/src"] {
        for (file, text) in rust_files(&workspace().join(crate_src)) {
            let shown = file.strip_prefix(workspace()).unwrap_or(&file).display().to_string();
            let lines = text.lines().count();
            if lines > 600 {
                found.push(format!("{shown}: {lines} lines"));
            }
            for (line, name, length) in long_functions(&text, 80) {
                found.push(format!("{shown}:{line}: fn {name} has {length} lines"));
            }
        }
    }
    assert!(found.is_empty(), "too long:\n{}", found.join("\n"));
    let long = format!("fn long() {{\n{}}}\n", "    step();\n".repeat(80));
    assert_eq!(long_functions(&long, 80), [(1, "long".to_owned(), 82)], "the measure counts a long one");
}
