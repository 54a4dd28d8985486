//! The guide: every Rust sample in `book/src` is included from a compiled file (an example, or
//! the macro's documentation, which runs as a doctest), every include and anchor resolves, and
//! the book builds with mdBook with no broken internal link.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn book_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../book")
}

fn chapters() -> Vec<(PathBuf, String)> {
    let mut chapters: Vec<_> = std::fs::read_dir(book_dir().join("src"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    chapters.sort();
    chapters
}

#[test]
fn rust_samples_are_included_from_compiled_files_and_their_anchors_exist() {
    for (path, text) in chapters() {
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```rust") {
                let next = lines.get(i + 1).copied().unwrap_or_default();
                assert!(next.starts_with("{{#include "), "{}:{}: a hand-written Rust block", path.display(), i + 1);
            }
            let Some(include) = line.trim().strip_prefix("{{#include ").and_then(|l| l.strip_suffix("}}")) else {
                continue;
            };
            let (file, anchor) = match include.split_once(':') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (include, None),
            };
            let target = path.parent().unwrap().join(file);
            let source = std::fs::read_to_string(&target)
                .unwrap_or_else(|e| panic!("{}: include {}: {e}", path.display(), target.display()));
            if let Some(anchor) = anchor {
                assert!(
                    source.contains(&format!("ANCHOR: {anchor}\n"))
                        && source.contains(&format!("ANCHOR_END: {anchor}\n")),
                    "{}: anchor {anchor} not in {}",
                    path.display(),
                    target.display()
                );
            }
        }
    }
}

#[test]
fn every_chapter_is_in_the_summary() {
    let summary = std::fs::read_to_string(book_dir().join("src/SUMMARY.md")).unwrap();
    for (path, _) in chapters() {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(name == "SUMMARY.md" || summary.contains(&format!("({name})")), "{name} is not in SUMMARY.md");
    }
}

#[test]
fn the_book_builds_with_no_broken_internal_links() {
    let out = std::env::temp_dir().join(format!("smoke-book-{}", std::process::id()));
    let output = Command::new("mdbook")
        .args(["build", "--dest-dir"])
        .arg(&out)
        .arg(book_dir())
        .output()
        .expect("mdbook is installed (scripts/test.sh installs it with cargo when missing)");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "mdbook build failed: {log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "mdbook complained: {log}");

    let mut pages = Vec::new();
    collect_html(&out, &mut pages);
    assert!(pages.len() >= 13, "only {} pages built", pages.len());
    let mut broken = Vec::new();
    let mut ids_cache: std::collections::HashMap<PathBuf, HashSet<String>> = Default::default();
    for page in &pages {
        let html = std::fs::read_to_string(page).unwrap();
        for href in attribute_values(&html, "href") {
            if href.contains("://") || href.starts_with("mailto:") || href.starts_with("javascript:") {
                continue;
            }
            let (file, fragment) = href.split_once('#').unwrap_or((href, ""));
            let target = if file.is_empty() { page.clone() } else { page.parent().unwrap().join(file) };
            if !target.exists() {
                broken.push(format!("{}: {href}", page.display()));
                continue;
            }
            if !fragment.is_empty() && target.extension().is_some_and(|e| e == "html") {
                let ids = ids_cache.entry(target.clone()).or_insert_with(|| {
                    let html = std::fs::read_to_string(&target).unwrap();
                    attribute_values(&html, "id").map(str::to_owned).collect()
                });
                if !ids.contains(fragment) {
                    broken.push(format!("{}: {href} (no such id)", page.display()));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&out);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

fn collect_html(dir: &Path, pages: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_html(&path, pages);
        } else if path.extension().is_some_and(|e| e == "html") {
            pages.push(path);
        }
    }
}

/// The values of `name="..."` attributes in an HTML page.
fn attribute_values<'a>(html: &'a str, name: &str) -> impl Iterator<Item = &'a str> {
    let needle = format!(" {name}=\"");
    let starts: Vec<usize> = html.match_indices(needle.as_str()).map(|(at, _)| at + needle.len()).collect();
    starts.into_iter().filter_map(move |start| {
        let rest = &html[start..];
        rest.find('"').map(|end| &rest[..end])
    })
}
