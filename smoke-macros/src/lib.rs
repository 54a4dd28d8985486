//! The attribute macros of smoke. Use them through the `smoke` crate (`smoke::server`,
//! `smoke::prelude::*`), where they are documented; this crate only turns the attribute and the
//! annotated impl block into an `impl smoke::Server`.
//!
//! Layout: `keys` and `model` hold the tables of keys and handlers (a protocol adds rows there),
//! `parse` reads the attribute and `methods` the impl block's methods against them, `expand`
//! writes the output. The values' rules (listeners, routes, names, limits) are `smoke_rules`', which the
//! runtime checks too.

mod expand;
mod keys;
mod methods;
mod model;
mod parse;

use proc_macro::TokenStream;

/// Turns an inherent impl block into a server; see `smoke::server` for the keys and handlers.
#[proc_macro_attribute]
pub fn server(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::server(args.into(), item.into()).into()
}

macro_rules! helper_attributes {
    ($($name:ident),* $(,)?) => {$(
        #[doc = concat!("Marks the `", stringify!($name), "` handler of a `#[smoke::server]` impl block; ")]
        #[doc = "meaningful only there (see `smoke::server`)."]
        #[proc_macro_attribute]
        pub fn $name(_args: TokenStream, item: TokenStream) -> TokenStream {
            expand::stray_helper(stringify!($name), item.into()).into()
        }
    )*};
}

helper_attributes!(
    on_connect,
    on_data,
    on_write,
    on_close,
    on_request,
    get,
    post,
    put,
    delete,
    route,
    on_upgrade,
    on_open,
    on_message,
    on_drain,
    on_datagram,
    on_timer,
    on_tick,
    on_join,
    on_leave,
);
