//! Writes the output: the user's impl (helper attributes stripped), the impls of smoke's
//! `Handler`, `Session` and `Server` whose methods forward to the user's, and the inherent
//! `config` / `serve` / `spawn`. The output names only smoke's public items and `__private`,
//! through `::smoke` or the `crate = ...` key's path.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemImpl, Type};

use crate::model::{
    BoundHandler, Form, GENERATED_METHODS, Model, Param, Part, Protocol, Returns, RouteModel, RouteSegment, Setting,
};
use crate::parse::{self, Errors};

pub(crate) fn server(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut model = Model::default();
    parse::attribute(args, &mut model, &mut errors);
    let krate = model.krate.as_ref().map_or_else(|| quote!(::smoke), |path| quote!(#path));

    let mut item: ItemImpl = match syn::parse2(item.clone()) {
        Ok(item) => item,
        Err(_) => {
            errors.push(syn::Error::new(
                first_token_span(&item),
                "#[smoke::server] goes on an inherent impl block of the session type: `impl MySession { ... }`",
            ));
            return with_errors(item, errors);
        }
    };
    if let Some((_, path, _)) = &item.trait_ {
        errors.at(path, "#[smoke::server] goes on an inherent impl block, not a trait impl");
        crate::methods::strip_handler_attributes(&mut item, model.krate.as_ref());
        return with_errors(quote!(#item), errors);
    }
    if !item.generics.params.is_empty() {
        errors.at(
            &item.generics,
            "#[smoke::server] cannot be used on a generic impl: a server's session is one concrete type",
        );
        crate::methods::strip_handler_attributes(&mut item, model.krate.as_ref());
        return with_errors(quote!(#item), errors);
    }

    crate::methods::handlers(&mut item, &mut model, &mut errors);
    crate::methods::completeness(&model, &mut errors);
    let self_ty = &*item.self_ty;
    if let Some(error) = errors.into_error() {
        // Still emit the user's impl, and the entry points with bodies that never run, so the
        // rest of the program and rust-analyzer see what they expect and no error cascades.
        let errors = error.to_compile_error();
        let taken = item.items.iter().any(
            |i| matches!(i, syn::ImplItem::Fn(f) if GENERATED_METHODS.contains(&f.sig.ident.to_string().as_str())),
        );
        let inherent = if taken { quote!() } else { inherent_methods(self_ty, &krate, false) };
        return quote! { #item #inherent #errors };
    }
    let impls = trait_impls(self_ty, &model, &krate);
    let inherent = inherent_methods(self_ty, &krate, true);
    quote! { #item #impls #inherent }
}

fn first_token_span(item: &TokenStream) -> Span {
    item.clone().into_iter().next().map_or_else(Span::call_site, |t| t.span())
}

fn with_errors(item: TokenStream, errors: Errors) -> TokenStream {
    let errors = errors.into_error().map(|e| e.to_compile_error());
    quote! { #item #errors }
}

/// `T::config()`, `T::serve()` and `T::spawn(config)` without importing the `Server` trait;
/// `forward: false` gives placeholders for a compilation that is failing anyway.
fn inherent_methods(self_ty: &Type, krate: &TokenStream, forward: bool) -> TokenStream {
    let body = |call: TokenStream| if forward { call } else { quote!(::core::unreachable!()) };
    let config = body(quote!(<Self as #krate::Server>::config()));
    let serve = body(quote!(<Self as #krate::Server>::serve()));
    let spawn = body(quote!(<Self as #krate::Server>::spawn(config)));
    quote! {
        impl #self_ty {
            /// The configuration written in `#[smoke::server(...)]`.
            #[allow(dead_code)]
            pub fn config() -> #krate::Config {
                #config
            }
            /// Runs the server until SIGINT/SIGTERM, with `SMOKE_*` environment overrides.
            #[allow(dead_code)]
            pub fn serve() -> ::core::result::Result<(), #krate::Error> {
                #serve
            }
            /// Starts the server with `config` and returns its handle.
            #[allow(dead_code, unused_variables)]
            pub fn spawn(config: #krate::Config) -> ::core::result::Result<#krate::ServerHandle, #krate::Error> {
                #spawn
            }
        }
    }
}

/// The three impls: `Handler` (raw TCP and what every connection has), `Session` (the other
/// protocols, the constructors, the routes) and `Server` (the configuration and the tick).
fn trait_impls(self_ty: &Type, model: &Model, krate: &TokenStream) -> TokenStream {
    let routing = (!model.routes.is_empty()).then(|| routing(model, krate));
    let forwards = |part: Part| -> Vec<TokenStream> {
        model
            .handlers
            .iter()
            .filter(|h| h.form != Form::Constructor && h.spec.part == part)
            // With routes, on_request is the routing function and the user's becomes its fallback.
            .filter(|h| routing.is_none() || h.spec.name != "on_request")
            .map(|handler| forward(handler, krate))
            .collect()
    };
    let handler = forwards(Part::Handler);
    // `Handler::on_data` has no default: a server without raw TCP consumes and ignores input.
    let on_data = (!model.handlers.iter().any(|h| h.spec.method == "on_data")).then(|| {
        quote! {
            fn on_data(&mut self, _conn: &mut #krate::Conn<'_>, input: &[u8]) -> usize {
                input.len()
            }
        }
    });
    let session = forwards(Part::Session);
    let constructors = constructors(self_ty, model, krate);
    let server = forwards(Part::Server);
    let config = config_expr(model, krate);
    quote! {
        impl #krate::Handler for #self_ty {
            #on_data
            #(#handler)*
        }
        impl #krate::Session for #self_ty {
            #constructors
            #(#session)*
            #routing
        }
        impl #krate::Server for #self_ty {
            fn config() -> #krate::Config {
                #config
            }
            #(#server)*
        }
    }
}

/// `new_session` (the user's constructor, or `Default`) and, with a `udp` listener, `new_peer`;
/// with a `game` listener, `new_player`.
fn constructors(self_ty: &Type, model: &Model, krate: &TokenStream) -> TokenStream {
    let new_session = match model.handlers.iter().find(|h| h.form == Form::Constructor) {
        Some(constructor) => {
            let method = &constructor.method;
            quote_spanned! {method.span()=>
                fn new_session(conn: &mut #krate::Conn<'_>) -> Self {
                    Self::#method(conn)
                }
            }
        }
        // Spanned at the type, so a missing Default is reported on it.
        None => quote_spanned! {self_ty.span()=>
            fn new_session(_conn: &mut #krate::Conn<'_>) -> Self {
                <Self as ::core::default::Default>::default()
            }
        },
    };
    // Peers are built with Default (spanned at the type, so a missing Default is reported on it).
    let new_peer = model.declares(Protocol::Udp).then(|| {
        quote_spanned! {self_ty.span()=>
            fn new_peer(_peer: &mut #krate::Peer<'_>) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::default::Default>::default())
            }
        }
    });
    // Players too, once they completed the handshake.
    let new_player = model.declares(Protocol::Game).then(|| {
        quote_spanned! {self_ty.span()=>
            fn new_player(_player: &mut #krate::game::Player<'_>) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::default::Default>::default())
            }
        }
    });
    quote! { #new_session #new_peer #new_player }
}

/// One trait method forwarding to the user's; the call carries the user's span, so a type
/// error lands on their method.
fn forward(handler: &BoundHandler, krate: &TokenStream) -> TokenStream {
    let name = format_ident!("{}", handler.spec.method);
    let method = &handler.method;
    // Arguments carry the user's span too, so a type mismatch is reported on their method.
    let args: Vec<_> = handler
        .spec
        .params
        .iter()
        .map(|p| proc_macro2::Ident::new(&format!("__smoke_{}", p.ident()), method.span()))
        .collect();
    let params: Vec<TokenStream> = handler
        .spec
        .params
        .iter()
        .zip(&args)
        .map(|(param, arg)| {
            let ty = param_type(*param, krate);
            quote!(#arg: #ty)
        })
        .collect();
    let returns = match handler.spec.returns {
        Returns::Nothing => quote!(),
        Returns::Usize => quote!(-> usize),
    };
    let cfgs = &handler.cfgs;
    if handler.form == Form::Associated {
        let call = quote_spanned!(method.span()=> Self::#method(#(#args),*));
        return quote! {
            #(#cfgs)*
            fn #name(#(#params),*) #returns {
                #call
            }
        };
    }
    let call = quote_spanned!(method.span()=> Self::#method(self, #(#args),*));
    quote! {
        #(#cfgs)*
        #[inline]
        fn #name(&mut self, #(#params),*) #returns {
            #call
        }
    }
}

fn param_type(param: Param, krate: &TokenStream) -> TokenStream {
    match param {
        Param::Conn => quote!(&mut #krate::Conn<'_>),
        Param::Bytes | Param::Packet => quote!(&[u8]),
        Param::CloseReason => quote!(#krate::CloseReason),
        Param::Request => quote!(&#krate::http::Request<'_>),
        Param::Response => quote!(&mut #krate::http::Response),
        Param::Upgrade => quote!(&mut #krate::ws::Upgrade<'_>),
        Param::WsConn => quote!(&mut #krate::ws::WsConn<'_, '_>),
        Param::Message => quote!(#krate::ws::Message<'_>),
        Param::Code => quote!(u16),
        Param::Reason => quote!(&str),
        Param::Peer => quote!(&mut #krate::Peer<'_>),
        Param::Worker => quote!(&mut #krate::Worker<'_, '_, Self>),
        Param::Player => quote!(&mut #krate::game::Player<'_>),
        Param::Channel => quote!(#krate::game::Channel),
        Param::LeaveReason => quote!(#krate::game::LeaveReason),
    }
}

/// `on_request` that matches the route table (most specific first) and calls the route's
/// method; the user's `#[on_request]`, if any, answers paths no route has.
fn routing(model: &Model, krate: &TokenStream) -> TokenStream {
    let mut routes: Vec<&RouteModel> = model.routes.iter().collect();
    routes.sort_by_key(|r| r.specificity());
    let table = routes.iter().map(|route| {
        let method = &route.method;
        let segments = route.segments.iter().map(|segment| match segment {
            RouteSegment::Static(text) => quote!(#krate::__private::Segment::Static(#text)),
            RouteSegment::Param(name) => quote!(#krate::__private::Segment::Param(#name)),
        });
        // A pattern without parameters is also emitted whole, for one comparison per request.
        let exact = match route.exact_path() {
            Some(path) => quote!(::core::option::Option::Some(#path)),
            None => quote!(::core::option::Option::None),
        };
        quote!(#krate::__private::Route { method: #method, segments: &[#(#segments),*], exact: #exact })
    });
    let arms = routes.iter().enumerate().map(|(index, route)| {
        let handler = &route.handler;
        let call = quote_spanned!(handler.span()=> Self::#handler(self, __smoke_req, __smoke_res));
        quote!(#index => #call,)
    });
    let not_found = match model.handlers.iter().find(|h| h.spec.name == "on_request") {
        Some(fallback) => {
            let method = &fallback.method;
            quote_spanned!(method.span()=> Self::#method(self, __smoke_req, __smoke_res))
        }
        None => quote!({
            __smoke_res.status(404);
        }),
    };
    // Routes without parameters first, by their method and path together: a `match` on byte
    // strings the compiler turns into a length switch and a few word compares. The table is
    // ordered most specific first, and nothing sorts before a parameterless route that could
    // match its path (see `RouteModel::specificity`), so this finds what `dispatch` would;
    // everything else (parameters, HEAD answered by GET, 404, 405) goes to `dispatch`.
    let exact_arms = routes.iter().filter_map(|route| {
        let path = route.exact_path()?;
        let (method, path) = (Literal::byte_string(route.method.as_bytes()), Literal::byte_string(path.as_bytes()));
        let handler = &route.handler;
        let call = quote_spanned!(handler.span()=> Self::#handler(self, __smoke_req, __smoke_res));
        Some(quote!((#method, #path) => return #call,))
    });
    quote! {
        fn on_request(&mut self, __smoke_req: &#krate::http::Request<'_>, __smoke_res: &mut #krate::http::Response) {
            const ROUTES: &[#krate::__private::Route] = &[#(#table),*];
            match #krate::__private::method_and_path(__smoke_req) {
                #(#exact_arms)*
                _ => {}
            }
            match #krate::__private::dispatch(__smoke_req, ROUTES) {
                #krate::__private::Dispatch::Found(__smoke_index, __smoke_params) => {
                    let __smoke_req = &#krate::__private::with_params(__smoke_req, __smoke_params);
                    match __smoke_index {
                        #(#arms)*
                        _ => ::core::unreachable!("route index out of the table"),
                    }
                }
                #krate::__private::Dispatch::MethodNotAllowed(__smoke_allow) => {
                    __smoke_res.status(405).header("Allow", __smoke_allow);
                }
                #krate::__private::Dispatch::NotFound => #not_found,
            }
        }
    }
}

fn config_expr(model: &Model, krate: &TokenStream) -> TokenStream {
    let listeners = model.listeners.iter().map(|listener| {
        let protocol = format_ident!("{}", capitalised(listener.protocol.name()));
        let value = match &listener.value {
            smoke_rules::Listen::Port(port) => quote!(#port),
            smoke_rules::Listen::Addr(text) => quote!(#text),
        };
        quote!(.listen(#krate::Protocol::#protocol, #value))
    });
    let settings = model.settings.iter().map(setting);
    quote!(#krate::Config::new() #(#listeners)* #(#settings)*)
}

/// One setting as the `Config` setter call it becomes.
fn setting(setting: &Setting) -> TokenStream {
    match setting {
        Setting::Bind(std::net::IpAddr::V4(ip)) => {
            let octets = ip.octets();
            quote!(.bind(::std::net::IpAddr::V4(::std::net::Ipv4Addr::from([#(#octets),*]))))
        }
        Setting::Bind(std::net::IpAddr::V6(ip)) => {
            let octets = ip.octets();
            quote!(.bind(::std::net::IpAddr::V6(::std::net::Ipv6Addr::from([#(#octets),*]))))
        }
        // Unsuffixed literals: rustc checks they fit the setter's usize on this target.
        Setting::Threads(count) => {
            let count = proc_macro2::Literal::u64_unsuffixed(*count);
            quote!(.threads(#count))
        }
        Setting::Count { setter, value } => {
            let setter = format_ident!("{}", setter);
            let value = proc_macro2::Literal::u64_unsuffixed(*value);
            quote!(.#setter(#value))
        }
        Setting::Text { setter, value } => {
            let setter = format_ident!("{}", setter);
            quote!(.#setter(#value))
        }
        Setting::Flag { setter, value } => {
            let setter = format_ident!("{}", setter);
            quote!(.#setter(#value))
        }
        Setting::Listen { setter, value } => {
            let setter = format_ident!("{}", setter);
            match value {
                smoke_rules::Listen::Port(port) => quote!(.#setter(#port)),
                smoke_rules::Listen::Addr(text) => quote!(.#setter(#text)),
            }
        }
        Setting::Millis { setter, value, optional } => {
            let setter = format_ident!("{}", setter);
            let duration = quote!(::std::time::Duration::from_millis(#value));
            if *optional {
                quote!(.#setter(::core::option::Option::Some(#duration)))
            } else {
                quote!(.#setter(#duration))
            }
        }
    }
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// A helper attribute used outside a `#[smoke::server]` impl: say so, keep the item.
pub(crate) fn stray_helper(name: &str, item: TokenStream) -> TokenStream {
    let message = format!("#[{name}] only works on a method inside a `#[smoke::server]` impl block");
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote! { #error #item }
}
