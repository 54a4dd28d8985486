//! `#[smoke::server]`'s attribute parser and the expansion behind it, on any attribute and any
//! item: never a panic (a mistake is a compile error, reported as tokens). The input is the
//! attribute's text, a NUL byte, and the item's; text that does not lex as Rust is skipped.
#![no_main]
#![allow(dead_code)]

use libfuzzer_sys::fuzz_target;
use proc_macro2::TokenStream;

#[path = "../../smoke-macros/src/expand.rs"]
mod expand;
#[path = "../../smoke-macros/src/keys.rs"]
mod keys;
#[path = "../../smoke-macros/src/methods.rs"]
mod methods;
#[path = "../../smoke-macros/src/model.rs"]
mod model;
#[path = "../../smoke-macros/src/parse.rs"]
mod parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (args, item) = text.split_once('\0').unwrap_or((text, "impl Server {}"));
    let (Ok(args), Ok(item)) = (args.parse::<TokenStream>(), item.parse::<TokenStream>()) else { return };
    let expanded = expand::server(args, item);
    // What comes out is tokens a compiler reads: it prints and lexes again.
    assert!(expanded.to_string().parse::<TokenStream>().is_ok());
});
