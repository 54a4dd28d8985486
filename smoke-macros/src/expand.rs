//! Writes the output: the user's impl (helpers stripped), `impl smoke::Server`, and the
//! inherent `config` / `serve` / `spawn`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemImpl, Type};

use crate::model::{Form, GENERATED_METHODS, Model, Param, Protocol, Returns, RouteModel, RouteSegment, Setting};
use crate::parse::{self, Errors};

pub(crate) fn server(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let mut model = Model::default();
    parse::attribute(args, &mut model, &mut errors);

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
        parse::strip_handler_attributes(&mut item);
        return with_errors(quote!(#item), errors);
    }
    if !item.generics.params.is_empty() {
        errors.at(
            &item.generics,
            "#[smoke::server] cannot be used on a generic impl: a server's session is one concrete type",
        );
        parse::strip_handler_attributes(&mut item);
        return with_errors(quote!(#item), errors);
    }

    parse::handlers(&mut item, &mut model, &mut errors);
    parse::completeness(&model, &mut errors);
    let self_ty = &*item.self_ty;
    if let Some(error) = errors.into_error() {
        // Still emit the user's impl, and the entry points with bodies that never run, so the
        // rest of the program and rust-analyzer see what they expect and no error cascades.
        let errors = error.to_compile_error();
        let taken = item.items.iter().any(
            |i| matches!(i, syn::ImplItem::Fn(f) if GENERATED_METHODS.contains(&f.sig.ident.to_string().as_str())),
        );
        let inherent = if taken { quote!() } else { inherent_methods(self_ty, false) };
        return quote! { #item #inherent #errors };
    }
    let server_impl = server_impl(self_ty, &model);
    let inherent = inherent_methods(self_ty, true);
    quote! { #item #server_impl #inherent }
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
fn inherent_methods(self_ty: &Type, forward: bool) -> TokenStream {
    let body = |call: TokenStream| if forward { call } else { quote!(::core::unreachable!()) };
    let config = body(quote!(<Self as ::smoke::Server>::config()));
    let serve = body(quote!(<Self as ::smoke::Server>::serve()));
    let spawn = body(quote!(<Self as ::smoke::Server>::spawn(config)));
    quote! {
        impl #self_ty {
            /// The configuration written in `#[smoke::server(...)]`.
            #[allow(dead_code)]
            pub fn config() -> ::smoke::Config {
                #config
            }
            /// Runs the server until SIGINT/SIGTERM, with `SMOKE_*` environment overrides.
            #[allow(dead_code)]
            pub fn serve() -> ::std::io::Result<()> {
                #serve
            }
            /// Starts the server with `config` and returns its handle.
            #[allow(dead_code, unused_variables)]
            pub fn spawn(config: ::smoke::Config) -> ::std::io::Result<::smoke::ServerHandle> {
                #spawn
            }
        }
    }
}

fn server_impl(self_ty: &Type, model: &Model) -> TokenStream {
    let config = config_expr(model);
    let new_session = match model.handlers.iter().find(|h| h.form == Form::Constructor) {
        Some(constructor) => {
            let method = &constructor.method;
            quote_spanned! {method.span()=>
                fn new_session(conn: &mut ::smoke::Conn<'_>) -> Self {
                    Self::#method(conn)
                }
            }
        }
        // Spanned at the type, so a missing Default is reported on it.
        None => quote_spanned! {self_ty.span()=>
            fn new_session(_conn: &mut ::smoke::Conn<'_>) -> Self {
                <Self as ::core::default::Default>::default()
            }
        },
    };
    // Peers are built with Default (spanned at the type, so a missing Default is reported on it).
    let new_peer = model.declares(Protocol::Udp).then(|| {
        quote_spanned! {self_ty.span()=>
            fn new_peer(_peer: &mut ::smoke::Peer<'_>) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(<Self as ::core::default::Default>::default())
            }
        }
    });
    let routing = (!model.routes.is_empty()).then(|| routing(model));
    let forwards = model
        .handlers
        .iter()
        .filter(|h| h.form != Form::Constructor)
        // With routes, on_request is the routing function and the user's becomes its fallback.
        .filter(|h| routing.is_none() || h.spec.name != "on_request")
        .map(|handler| {
            let name = format_ident!("{}", handler.spec.method);
            let method = &handler.method;
            // Arguments carry the user's span too, so a type mismatch is reported on their method.
            let args: Vec<_> = handler
                .spec
                .params
                .iter()
                .map(|p| proc_macro2::Ident::new(&format!("__smoke_{}", p.ident()), method.span()))
                .collect();
            let params = handler.spec.params.iter().zip(&args).map(|(param, arg)| {
                let ty = match param {
                    Param::Conn => quote!(&mut ::smoke::Conn<'_>),
                    Param::Bytes | Param::Packet => quote!(&[u8]),
                    Param::CloseReason => quote!(::smoke::CloseReason),
                    Param::Request => quote!(&::smoke::http::Request<'_>),
                    Param::Response => quote!(&mut ::smoke::http::Response),
                    Param::Upgrade => quote!(&mut ::smoke::ws::Upgrade<'_>),
                    Param::WsConn => quote!(&mut ::smoke::ws::WsConn<'_, '_>),
                    Param::Message => quote!(::smoke::ws::Message<'_>),
                    Param::Code => quote!(u16),
                    Param::Reason => quote!(&str),
                    Param::Peer => quote!(&mut ::smoke::Peer<'_>),
                    Param::Worker => quote!(&mut ::smoke::Worker<'_, '_, Self>),
                };
                quote!(#arg: #ty)
            });
            let params: Vec<TokenStream> = params.collect();
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
            // The call carries the user's span: a type error lands on their method.
            let call = quote_spanned!(method.span()=> Self::#method(self, #(#args),*));
            quote! {
                #(#cfgs)*
                #[inline]
                fn #name(&mut self, #(#params),*) #returns {
                    #call
                }
            }
        });
    quote! {
        impl ::smoke::Server for #self_ty {
            fn config() -> ::smoke::Config {
                #config
            }
            #new_session
            #new_peer
            #(#forwards)*
            #routing
        }
    }
}

/// `on_request` that matches the route table (most specific first) and calls the route's
/// method; the user's `#[on_request]`, if any, answers paths no route has.
fn routing(model: &Model) -> TokenStream {
    let mut routes: Vec<&RouteModel> = model.routes.iter().collect();
    routes.sort_by_key(|r| r.specificity());
    let table = routes.iter().map(|route| {
        let method = &route.method;
        let segments = route.segments.iter().map(|segment| match segment {
            RouteSegment::Static(text) => quote!(::smoke::http::Segment::Static(#text)),
            RouteSegment::Param(name) => quote!(::smoke::http::Segment::Param(#name)),
        });
        quote!(::smoke::http::Route { method: #method, segments: &[#(#segments),*] })
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
    quote! {
        fn on_request(&mut self, __smoke_req: &::smoke::http::Request<'_>, __smoke_res: &mut ::smoke::http::Response) {
            const ROUTES: &[::smoke::http::Route] = &[#(#table),*];
            match ::smoke::http::dispatch(__smoke_req, ROUTES) {
                ::smoke::http::Dispatch::Found(__smoke_index, __smoke_params) => {
                    let __smoke_req = &__smoke_req.with_params(__smoke_params);
                    match __smoke_index {
                        #(#arms)*
                        _ => ::core::unreachable!("route index out of the table"),
                    }
                }
                ::smoke::http::Dispatch::MethodNotAllowed(__smoke_allow) => {
                    __smoke_res.status(405).header("Allow", __smoke_allow);
                }
                ::smoke::http::Dispatch::NotFound => #not_found,
            }
        }
    }
}

fn config_expr(model: &Model) -> TokenStream {
    let listeners = model.listeners.iter().map(|listener| {
        let protocol = format_ident!("{}", capitalised(listener.protocol.name()));
        let value = match &listener.value {
            smoke_rules::Listen::Port(port) => quote!(#port),
            smoke_rules::Listen::Addr(text) => quote!(#text),
        };
        quote!(.listen(::smoke::Protocol::#protocol, #value))
    });
    let settings = model.settings.iter().map(|setting| match setting {
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
        Setting::Millis { setter, value, optional } => {
            let setter = format_ident!("{}", setter);
            let duration = quote!(::std::time::Duration::from_millis(#value));
            if *optional {
                quote!(.#setter(::core::option::Option::Some(#duration)))
            } else {
                quote!(.#setter(#duration))
            }
        }
    });
    quote!(::smoke::Config::new() #(#listeners)* #(#settings)*)
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
