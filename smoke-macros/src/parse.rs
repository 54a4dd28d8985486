//! Reads the attribute and the impl block into a checked [`Model`], collecting every error.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, FnArg, ImplItem, ItemImpl, Lit, LitStr, Meta, ReturnType, Token, Type};

use crate::model::{
    BoundHandler, Form, GENERATED_METHODS, HANDLERS, HandlerSpec, KEYS, KeyKind, Listener, Model, Param,
    ROUTE_ATTRIBUTES, ROUTE_HANDLER, Returns, RouteModel, RouteSegment, Setting, closest,
};

/// Every error found, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }
    pub(crate) fn into_error(self) -> Option<syn::Error> {
        self.0
    }
}

fn key_list() -> String {
    KEYS.iter().map(|k| format!("`{}`", k.name)).collect::<Vec<_>>().join(", ")
}

/// Parses `tcp = 9090, threads = 2, ...` into listeners and settings.
pub(crate) fn attribute(args: TokenStream, model: &mut Model, errors: &mut Errors) {
    let mut attribute_errors = Errors::default();
    attribute_entries(args, model, &mut attribute_errors);
    if let Some(error) = attribute_errors.into_error() {
        model.attribute_failed = true;
        errors.push(error);
    }
}

fn attribute_entries(args: TokenStream, model: &mut Model, errors: &mut Errors) {
    let metas = match syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, args) {
        Ok(metas) => metas,
        Err(e) => return errors.push(e),
    };
    let mut seen: Vec<(String, Span)> = Vec::new();
    let mut path_settings = Vec::new();
    for meta in metas {
        if let Some(KeyKind::Listener(protocol)) = KEYS.iter().find(|k| meta.path().is_ident(k.name)).map(|k| k.kind) {
            model.declared.push(protocol);
        }
        let Meta::NameValue(pair) = &meta else {
            errors.at(&meta, format!("expected `key = value`; valid keys: {}", key_list()));
            continue;
        };
        let Some(name) = pair.path.get_ident().map(|i| i.to_string()) else {
            errors.at(&pair.path, format!("expected a key name; valid keys: {}", key_list()));
            continue;
        };
        let Some(spec) = KEYS.iter().find(|k| k.name == name) else {
            let hint = closest(&name, KEYS.iter().map(|k| k.name))
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errors.at(&pair.path, format!("unknown key `{name}`; {hint}valid keys: {}", key_list()));
            continue;
        };
        if seen.iter().any(|(n, _)| *n == name) {
            errors.at(&pair.path, format!("`{name}` is given twice"));
            continue;
        }
        seen.push((name.clone(), pair.path.span()));
        let value = ungrouped(&pair.value);
        match spec.kind {
            KeyKind::Listener(protocol) => {
                let items: Vec<&Expr> = match value {
                    Expr::Array(ExprArray { elems, .. }) if !elems.is_empty() => elems.iter().map(ungrouped).collect(),
                    other => vec![other],
                };
                for item in items {
                    match listen_value(item) {
                        Ok(value) => model.listeners.push(Listener { protocol, value, span: item.span() }),
                        Err(e) => errors.push(e),
                    }
                }
            }
            KeyKind::Bind => match value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => match s.value().parse() {
                    Ok(ip) => model.settings.push(Setting::Bind(ip)),
                    Err(_) => errors.at(
                        s,
                        format!("`bind` expects an IP address such as \"0.0.0.0\" or \"::\", not {:?}", s.value()),
                    ),
                },
                other => errors.at(other, "`bind` expects an IP address string such as \"0.0.0.0\" or \"::\""),
            },
            KeyKind::Threads => match value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value() == "auto" => {
                    model.settings.push(Setting::Threads(0))
                }
                Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => match n.base10_parse::<u64>() {
                    Ok(count) if count >= 1 => model.settings.push(Setting::Threads(count)),
                    _ => errors.at(n, "`threads` must be at least 1 (or \"auto\" for one per core)"),
                },
                other => errors.at(other, "`threads` expects a number or \"auto\""),
            },
            KeyKind::Count { min, max } => match integer(value, &name) {
                Ok(count) if (min..=max).contains(&count) => {
                    model.settings.push(Setting::Count { setter: spec.name, value: count })
                }
                Ok(count) if count < min => errors.at(value, format!("`{name}` must be at least {min}")),
                Ok(_) => errors.at(value, format!("`{name}` must be at most {max}")),
                Err(e) => errors.push(e),
            },
            KeyKind::Millis { setter, optional } => match integer(value, &name) {
                Ok(ms) if ms >= 1 => model.settings.push(Setting::Millis { setter, value: ms, optional }),
                Ok(_) => errors.at(value, format!("`{name}` must be at least 1; leave it out for no timeout")),
                Err(e) => errors.push(e),
            },
            KeyKind::Path { declares, needs } => {
                model.declared.push(declares);
                path_settings.push((pair.path.clone(), needs));
                match value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value().starts_with('/') => {
                        model.settings.push(Setting::Text { setter: spec.name, value: s.value() })
                    }
                    other => {
                        errors.at(other, format!("`{name}` expects a path string starting with `/`, e.g. \"/ws\""))
                    }
                }
            }
            KeyKind::Interface { needs } => {
                path_settings.push((pair.path.clone(), needs));
                match value {
                    Expr::Lit(ExprLit { lit: Lit::Str(s), .. })
                        if smoke_rules::check_interface_name(&s.value()).is_ok() =>
                    {
                        model.settings.push(Setting::Text { setter: spec.name, value: s.value() })
                    }
                    other => errors.at(other, format!("`{name}` expects a network interface name such as \"eth0\"")),
                }
            }
            KeyKind::Flag => match value {
                Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => {
                    model.settings.push(Setting::Flag { setter: spec.name, value: b.value })
                }
                other => errors.at(other, format!("`{name}` expects `true` or `false`")),
            },
        }
    }
    for (key, needs) in path_settings {
        if !model.declares(needs) {
            let key_name = key.get_ident().map(ToString::to_string).unwrap_or_default();
            errors.at(
                &key,
                format!(
                    "`{key_name}` is served on the `{0}` listener, but this server declares none (add `{0} = PORT`)",
                    needs.name()
                ),
            );
        }
    }
    check_ports(model, errors);
}

/// A value passed through `macro_rules` (`$port:expr`) arrives wrapped in an invisible group.
fn ungrouped(value: &Expr) -> &Expr {
    match value {
        Expr::Group(group) => ungrouped(&group.expr),
        Expr::Paren(paren) => ungrouped(&paren.expr),
        other => other,
    }
}

fn integer(value: &Expr, name: &str) -> syn::Result<u64> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => n
            .base10_parse::<u64>()
            .map_err(|_| syn::Error::new_spanned(n, format!("`{name}` expects a non-negative integer"))),
        other => Err(syn::Error::new_spanned(other, format!("`{name}` expects an integer"))),
    }
}

fn listen_value(value: &Expr) -> syn::Result<smoke_rules::Listen> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => smoke_rules::parse_port(n.base10_digits())
            .map(smoke_rules::Listen::Port)
            .map_err(|e| syn::Error::new_spanned(n, e)),
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            smoke_rules::Listen::parse(&s.value()).map_err(|e| syn::Error::new_spanned(s, e))
        }
        other => Err(syn::Error::new_spanned(other, "expected a port number or a \"host:port\" string")),
    }
}

/// Two listeners may not bind the same socket (smoke_rules::overlap): bare ports bind the
/// `bind` address.
fn check_ports(model: &Model, errors: &mut Errors) {
    let bind = model
        .settings
        .iter()
        .find_map(|s| match s {
            Setting::Bind(ip) => Some(*ip),
            _ => None,
        })
        .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
    for (i, later) in model.listeners.iter().enumerate() {
        let socket = later.value.socket(later.protocol, bind);
        let clash = model.listeners[..i]
            .iter()
            .find(|earlier| smoke_rules::overlap(&earlier.value.socket(earlier.protocol, bind), &socket));
        if let Some(earlier) = clash {
            errors.push(syn::Error::new(
                later.span,
                format!("port {} is already taken by the {} listener before it", socket.port, earlier.protocol.name()),
            ));
        }
    }
}

/// Finds the `#[on_*]` methods, strips those attributes, and checks each signature.
pub(crate) fn handlers(item: &mut ItemImpl, model: &mut Model, errors: &mut Errors) {
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let name = method.sig.ident.unraw().to_string();
        if GENERATED_METHODS.contains(&name.as_str()) {
            errors.at(
                &method.sig.ident,
                format!("`{name}` is generated by #[smoke::server] (config, serve, spawn); rename this method"),
            );
        }
        let mut found: Vec<(Marker, syn::Attribute)> = Vec::new();
        let mut kept = Vec::new();
        for attr in method.attrs.drain(..) {
            let Some(name) = handler_name(&attr) else {
                kept.push(attr);
                continue;
            };
            if let Some(spec) = handler_spec(&name, &method.sig) {
                if spec.associated {
                    match tick_cadence(&attr) {
                        Ok(ms) => model.settings.push(Setting::Millis { setter: "tick", value: ms, optional: false }),
                        Err(e) => errors.push(e),
                    }
                } else if let Meta::List(_) | Meta::NameValue(_) = &attr.meta {
                    errors.at(&attr, format!("#[{name}] takes no arguments"));
                }
                found.push((Marker::Handler(spec), attr));
            } else if let Some((route_name, fixed)) = ROUTE_ATTRIBUTES.iter().find(|(n, _)| *n == name) {
                model.saw_route = true;
                match route_attribute(&attr, route_name, *fixed) {
                    Ok(route) => found.push((Marker::Route(route_name, route), attr)),
                    Err(e) => errors.push(e),
                }
            } else {
                let known = HANDLERS.iter().map(|h| h.name).chain(ROUTE_ATTRIBUTES.iter().map(|(n, _)| *n));
                let suggestion = closest(&name, known);
                // Count the typo as the handler it most likely meant, so it is not also
                // reported as missing.
                if let Some(meant) = suggestion.and_then(|c| handler_spec(c, &method.sig)) {
                    model.seen.push((meant.method, method.sig.ident.clone()));
                }
                let hint = suggestion.map(|c| format!("; did you mean #[{c}]?")).unwrap_or_default();
                let mut seen_names = std::collections::HashSet::new();
                let all = HANDLERS
                    .iter()
                    .map(|h| format!("#[{}]", h.name))
                    .filter(|h| seen_names.insert(h.clone()))
                    .chain(ROUTE_ATTRIBUTES.iter().map(|(n, _)| format!("#[{n}(..)]")))
                    .collect::<Vec<_>>()
                    .join(", ");
                errors.at(attr.path(), format!("unknown handler #[{name}]{hint} (handlers: {all})"));
            }
        }
        method.attrs = kept;
        if found.len() > 1 {
            errors.at(&found[1].1, "a method can be only one handler");
        }
        let Some((marker, attr)) = found.into_iter().next() else { continue };
        let spec = match &marker {
            Marker::Handler(spec) => *spec,
            Marker::Route(..) => &ROUTE_HANDLER,
        };
        let shown_name = match &marker {
            Marker::Handler(spec) => spec.name,
            Marker::Route(name, _) => name,
        };
        let cfgs: Vec<syn::Attribute> = method.attrs.iter().filter(|a| a.path().is_ident("cfg")).cloned().collect();
        if let Marker::Handler(spec) = &marker {
            let earlier = model.seen.iter().find(|(name, _)| name == &spec.method);
            // Two cfg-gated methods may both carry a handler (one per configuration).
            let both_gated = !cfgs.is_empty()
                && earlier.is_some_and(|(_, m)| model.handlers.iter().any(|h| h.method == *m && !h.cfgs.is_empty()));
            if let (Some((_, earlier)), false) = (earlier, both_gated) {
                errors.at(&attr, format!("#[{}] is given twice (first on `fn {earlier}`)", spec.name));
                continue;
            }
            model.seen.push((spec.method, method.sig.ident.clone()));
        }
        let protocol_missing = spec.protocol.filter(|p| !model.declares(*p) && !model.attribute_failed);
        if let Some(protocol) = protocol_missing.map(|p| p.name()) {
            errors.at(
                &attr,
                format!(
                    "#[{shown_name}] handles {protocol} connections, but this server declares no `{protocol}` listener{}",
                    if protocol == "ws" { " (nor `ws_path` on an http listener)" } else { "" }
                ),
            );
        }
        let named_spec = HandlerSpec { name: shown_name, ..ROUTE_HANDLER };
        let checked_spec = if matches!(marker, Marker::Route(..)) { &named_spec } else { spec };
        let form = match check_signature(checked_spec, &method.sig, &item.self_ty) {
            Ok(form) => form,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        match marker {
            Marker::Handler(spec) => {
                model.handlers.push(BoundHandler { spec, method: method.sig.ident.clone(), form, cfgs })
            }
            Marker::Route(_, (method_name, pattern, segments)) => {
                let route = RouteModel {
                    method: method_name,
                    pattern: pattern.value(),
                    segments,
                    handler: method.sig.ident.clone(),
                };
                if let Some(earlier) = model.routes.iter().find(|r| r.conflicts_with(&route)) {
                    errors.at(
                        &pattern,
                        format!(
                            "route {} {} conflicts with {} {} on `fn {}`: a request would match both",
                            route.method, route.pattern, earlier.method, earlier.pattern, earlier.handler
                        ),
                    );
                    continue;
                }
                model.routes.push(route);
            }
        }
    }
}

/// The handler row for attribute `name` on a method with this signature: where one attribute
/// has rows for several signatures (`on_close`, `on_timer`), the one whose argument types
/// match, else the closest by count and first type, else the first (whose signature the error
/// then shows, with the others').
fn handler_spec(name: &str, sig: &syn::Signature) -> Option<&'static HandlerSpec> {
    let arguments = typed_arguments(sig);
    let rows: Vec<&'static HandlerSpec> = HANDLERS.iter().filter(|h| h.name == name).collect();
    let first = *rows.first()?;
    let same_count = |h: &&&HandlerSpec| h.params.len() == arguments.len();
    let same_types = |h: &&&HandlerSpec| h.params.iter().zip(&arguments).all(|(p, ty)| param_matches(ty, *p));
    Some(
        rows.iter()
            .find(|h| same_count(h) && same_types(h))
            .or_else(|| rows.iter().find(|h| same_count(h) && param_matches(arguments[0], h.params[0])))
            .or_else(|| rows.iter().find(same_count))
            .copied()
            .unwrap_or(first),
    )
}

/// The types of a method's arguments after the receiver.
fn typed_arguments(sig: &syn::Signature) -> Vec<&Type> {
    sig.inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect()
}

/// The `ms = N` of `#[on_tick(ms = N)]`.
fn tick_cadence(attr: &syn::Attribute) -> syn::Result<u64> {
    let missing =
        || syn::Error::new_spanned(attr, "#[on_tick] needs its cadence in milliseconds: `#[on_tick(ms = 50)]`");
    let Meta::List(list) = &attr.meta else { return Err(missing()) };
    let pair: syn::MetaNameValue = list.parse_args().map_err(|_| missing())?;
    if !pair.path.is_ident("ms") {
        return Err(syn::Error::new_spanned(&pair.path, "#[on_tick] takes `ms = N` (milliseconds between ticks)"));
    }
    match integer(ungrouped(&pair.value), "ms")? {
        0 => Err(syn::Error::new_spanned(&pair.value, "the tick cadence must be at least 1 ms")),
        ms => Ok(ms),
    }
}

/// What an attribute on a method makes of it.
enum Marker {
    Handler(&'static HandlerSpec),
    /// The attribute's name, and (method, pattern literal, segments).
    Route(&'static str, (String, LitStr, Vec<RouteSegment>)),
}

/// `#[get("/path")]` or `#[route(PATCH, "/path")]`.
fn route_attribute(
    attr: &syn::Attribute,
    name: &str,
    fixed: Option<&str>,
) -> syn::Result<(String, LitStr, Vec<RouteSegment>)> {
    let usage = match fixed {
        Some(_) => format!("#[{name}(\"/path/:param\")]"),
        None => format!("#[{name}(METHOD, \"/path/:param\")]"),
    };
    if !matches!(attr.meta, Meta::List(_)) {
        return Err(syn::Error::new_spanned(attr, format!("#[{name}] needs a path: {usage}")));
    }
    let (method, pattern) = match fixed {
        Some(method) => (
            method.to_owned(),
            attr.parse_args::<LitStr>().map_err(|e| syn::Error::new(e.span(), format!("expected {usage}")))?,
        ),
        None => attr
            .parse_args_with(|input: syn::parse::ParseStream<'_>| {
                let method = if input.peek(LitStr) {
                    input.parse::<LitStr>()?.value()
                } else {
                    input.parse::<syn::Ident>()?.to_string()
                };
                input.parse::<Token![,]>()?;
                let pattern = input.parse::<LitStr>()?;
                Ok((method, pattern))
            })
            .map_err(|e| syn::Error::new(e.span(), format!("expected {usage}")))?,
    };
    if !smoke_rules::is_token(&method) {
        return Err(syn::Error::new_spanned(attr, format!("`{method}` is not an HTTP method")));
    }
    let segments = route_segments(&pattern)?;
    Ok((method, pattern, segments))
}

/// The pattern's segments (smoke_rules::parse_route), or its error on the literal.
fn route_segments(pattern: &LitStr) -> syn::Result<Vec<RouteSegment>> {
    let text = pattern.value();
    smoke_rules::parse_route(&text)
        .map_err(|why| syn::Error::new_spanned(pattern, format!("invalid route `{text}`: {why}")))
}

/// Removes the handler attributes without checking them (for an impl rejected as a whole), so
/// they do not add "outside a server" errors of their own.
pub(crate) fn strip_handler_attributes(item: &mut ItemImpl) {
    for impl_item in &mut item.items {
        if let ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|attr| handler_name(attr).is_none());
        }
    }
}

/// `Some("on_data")` for `#[on_data]`, `#[smoke::on_data]`, any other `#[on_*]`, and the route
/// attributes (`#[get(..)]`, ...).
fn handler_name(attr: &syn::Attribute) -> Option<String> {
    let segments: Vec<String> = attr.path().segments.iter().map(|s| s.ident.to_string()).collect();
    let last = segments.last()?;
    let known = HANDLERS.iter().any(|h| h.name == last) || ROUTE_ATTRIBUTES.iter().any(|(n, _)| n == last);
    match segments.as_slice() {
        // `#[on_data]`, `#[smoke::on_data]`, `#[sm::on_data]` (a renamed import), and typos
        // of handlers written bare or through `smoke::`.
        _ if known && (segments.len() == 1 || last.starts_with("on_") || segments[0] == "smoke") => Some(last.clone()),
        [name] if name.starts_with("on_") => Some(name.clone()),
        [krate, name] if krate == "smoke" && name != "server" => Some(name.clone()),
        _ => None,
    }
}

fn check_signature(spec: &HandlerSpec, sig: &syn::Signature, self_ty: &Type) -> syn::Result<Form> {
    let mut expected = spec.signature();
    for other in HANDLERS.iter().filter(|h| h.name == spec.name && h.method != spec.method) {
        let protocol = other.protocol.map_or("any connection", |p| p.name());
        expected = format!("{expected}` or, for {protocol}, `{}", other.signature());
    }
    let wrong = |tokens: &dyn ToTokens, what: String| {
        syn::Error::new_spanned(tokens, format!("{what}; #[{}] handlers are `{expected}`", spec.name))
    };
    if let Some(asyncness) = &sig.asyncness {
        return Err(wrong(asyncness, "handlers are not async".into()));
    }
    if let Some(unsafety) = &sig.unsafety {
        return Err(wrong(unsafety, "handlers cannot be `unsafe fn`".into()));
    }
    if sig.generics.params.iter().any(|p| !matches!(p, syn::GenericParam::Lifetime(_))) {
        return Err(wrong(&sig.generics, "handlers cannot be generic".into()));
    }
    let form = match sig.receiver() {
        None if spec.associated => Form::Associated,
        Some(receiver) if spec.associated => {
            return Err(wrong(receiver, "this handler runs per worker, not per session: no `self`".into()));
        }
        Some(receiver)
            if receiver.reference.is_some() && receiver.mutability.is_some() && receiver.colon_token.is_none() =>
        {
            Form::Method
        }
        Some(receiver) => return Err(wrong(receiver, "the receiver must be `&mut self`".into())),
        None if spec.may_construct && returns_self(&sig.output, self_ty) => Form::Constructor,
        None if spec.may_construct && matches!(sig.output, ReturnType::Type(..)) => {
            return Err(wrong(&sig.output, "a session constructor must return `Self`".into()));
        }
        None => {
            let also = if spec.may_construct { " (or a constructor `fn(conn: &mut Conn) -> Self`)" } else { "" };
            return Err(wrong(&sig.ident, format!("missing `&mut self`{also}")));
        }
    };
    let params = typed_arguments(sig);
    if params.len() != spec.params.len() {
        let span_of: &dyn ToTokens = if sig.inputs.is_empty() { &sig.ident } else { &sig.inputs };
        return Err(wrong(
            span_of,
            format!("expected {} argument(s) after the receiver, found {}", spec.params.len(), params.len()),
        ));
    }
    for (ty, param) in params.iter().zip(spec.params) {
        if !param_matches(ty, *param) {
            return Err(wrong(ty, format!("expected `{}` here", param.describe())));
        }
    }
    match form {
        Form::Constructor => {}
        Form::Method | Form::Associated => {
            let ok = match (spec.returns, &sig.output) {
                (Returns::Nothing, ReturnType::Default) => true,
                (Returns::Nothing, ReturnType::Type(_, ty)) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
                (Returns::Usize, ReturnType::Type(_, ty)) => is_named(ty, "usize"),
                (Returns::Usize, ReturnType::Default) => false,
            };
            if !ok {
                let what = match spec.returns {
                    Returns::Nothing => "this handler returns nothing".to_owned(),
                    Returns::Usize => "this handler returns the number of bytes consumed (`usize`)".to_owned(),
                };
                let span_of: &dyn ToTokens = match &sig.output {
                    ReturnType::Default => &sig.ident,
                    output => output,
                };
                return Err(wrong(span_of, what));
            }
        }
    }
    Ok(form)
}

fn returns_self(output: &ReturnType, self_ty: &Type) -> bool {
    match output {
        ReturnType::Type(_, ty) => {
            is_named(ty, "Self") || ty.to_token_stream().to_string() == self_ty.to_token_stream().to_string()
        }
        ReturnType::Default => false,
    }
}

fn is_named(ty: &Type, name: &str) -> bool {
    match ty {
        Type::Path(path) => path.qself.is_none() && path.path.segments.last().is_some_and(|s| s.ident == name),
        Type::Paren(inner) => is_named(&inner.elem, name),
        _ => false,
    }
}

fn param_matches(ty: &Type, param: Param) -> bool {
    match (param, ty) {
        (Param::Conn, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Conn"),
        (Param::Bytes | Param::Packet, Type::Reference(r)) => {
            r.mutability.is_none() && matches!(&*r.elem, Type::Slice(slice) if is_named(&slice.elem, "u8"))
        }
        (Param::CloseReason, ty) => is_named(ty, "CloseReason"),
        (Param::Request, Type::Reference(r)) => r.mutability.is_none() && is_named(&r.elem, "Request"),
        (Param::Response, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Response"),
        (Param::Upgrade, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Upgrade"),
        (Param::WsConn, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "WsConn"),
        (Param::Message, ty) => is_named(ty, "Message"),
        (Param::Code, ty) => is_named(ty, "u16"),
        (Param::Reason, Type::Reference(r)) => r.mutability.is_none() && is_named(&r.elem, "str"),
        (Param::Peer, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Peer"),
        (Param::Worker, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Worker"),
        _ => false,
    }
}

/// After the whole block is read: every declared protocol has its required handlers.
pub(crate) fn completeness(model: &Model, errors: &mut Errors) {
    if model.attribute_failed {
        return;
    }
    if model.declared.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("#[smoke::server] needs at least one listener, e.g. `tcp = 9090`; valid keys: {}", key_list()),
        ));
    }
    for spec in HANDLERS.iter().filter(|h| h.required) {
        let Some(protocol) = spec.protocol.filter(|p| model.declares(*p)) else { continue };
        // An http listener that only carries `ws_path` upgrades may leave other paths to 404.
        let ws_path = model.settings.iter().any(|s| matches!(s, Setting::Text { setter: "ws_path", .. }));
        let stood_in = spec.routes_suffice && (model.saw_route || ws_path);
        if !stood_in && !model.seen.iter().any(|(name, _)| *name == spec.method) {
            errors.push(syn::Error::new(
                Span::call_site(),
                format!(
                    "a server with a `{}` listener needs an #[{}] handler: `{}`",
                    protocol.name(),
                    spec.name,
                    spec.signature()
                ),
            ));
        }
    }
}
