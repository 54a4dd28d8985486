//! The attribute macros of smoke. Empty until the DSL lands ("The DSL: #[smoke::server] on an
//! impl block"); the crate exists so the workspace layout is final from the start.
