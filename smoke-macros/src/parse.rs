//! Reads the attribute and the impl block into a checked [`Model`], collecting every error.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, FnArg, ImplItem, ItemImpl, Lit, Meta, ReturnType, Token, Type};

use crate::model::{
    BoundHandler, Form, GENERATED_METHODS, HANDLERS, HandlerSpec, KEYS, KeyKind, ListenValue, Listener, Model, Param,
    Returns, Setting, closest,
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
    let metas = match syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, args) {
        Ok(metas) => metas,
        Err(e) => return errors.push(e),
    };
    let mut seen: Vec<(String, Span)> = Vec::new();
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
        let value = &pair.value;
        match spec.kind {
            KeyKind::Listener(protocol) => {
                let items: Vec<&Expr> = match value {
                    Expr::Array(ExprArray { elems, .. }) if !elems.is_empty() => elems.iter().collect(),
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
            KeyKind::Count { min } => match integer(value, &name) {
                Ok(count) if count >= min => model.settings.push(Setting::Count { setter: spec.name, value: count }),
                Ok(_) => errors.at(value, format!("`{name}` must be at least {min}")),
                Err(e) => errors.push(e),
            },
            KeyKind::Millis { setter } => match integer(value, &name) {
                Ok(ms) if ms >= 1 => model.settings.push(Setting::Millis { setter, value: ms }),
                Ok(_) => errors.at(value, format!("`{name}` must be at least 1; leave it out for no timeout")),
                Err(e) => errors.push(e),
            },
        }
    }
    check_ports(model, errors);
}

fn integer(value: &Expr, name: &str) -> syn::Result<u64> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => n
            .base10_parse::<u64>()
            .map_err(|_| syn::Error::new_spanned(n, format!("`{name}` expects a non-negative integer"))),
        other => Err(syn::Error::new_spanned(other, format!("`{name}` expects an integer"))),
    }
}

fn listen_value(value: &Expr) -> syn::Result<ListenValue> {
    let port_range = |shown: &dyn ToTokens, port: &str| {
        syn::Error::new_spanned(shown, format!("port {port} is out of range (0..=65535)"))
    };
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => {
            n.base10_parse::<u16>().map(ListenValue::Port).map_err(|_| port_range(n, n.base10_digits()))
        }
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => {
            let text = s.value();
            if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
                return text.parse::<u16>().map(ListenValue::Port).map_err(|_| port_range(s, &text));
            }
            match text.rsplit_once(':') {
                Some((host, port))
                    if !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    let port = port.parse::<u16>().map_err(|_| port_range(s, port))?;
                    Ok(ListenValue::Addr { host: host.to_owned(), port, text })
                }
                _ => Err(syn::Error::new_spanned(s, format!("expected a port or \"host:port\", not {text:?}"))),
            }
        }
        other => Err(syn::Error::new_spanned(other, "expected a port number or a \"host:port\" string")),
    }
}

/// Two listeners may not share a port on overlapping addresses (port 0 always gets a fresh one).
fn check_ports(model: &Model, errors: &mut Errors) {
    for (i, later) in model.listeners.iter().enumerate() {
        let port = later.value.port();
        if port == 0 {
            continue;
        }
        let clash = model.listeners[..i].iter().find(|earlier| {
            earlier.value.port() == port
                && match (earlier.value.host(), later.value.host()) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        if let Some(earlier) = clash {
            errors.push(syn::Error::new(
                later.span,
                format!("port {port} is already taken by the {} listener before it", earlier.protocol.name()),
            ));
        }
    }
}

/// Finds the `#[on_*]` methods, strips those attributes, and checks each signature.
pub(crate) fn handlers(item: &mut ItemImpl, model: &mut Model, errors: &mut Errors) {
    for impl_item in &mut item.items {
        let ImplItem::Fn(method) = impl_item else { continue };
        let name = method.sig.ident.to_string();
        if GENERATED_METHODS.contains(&name.as_str()) {
            errors.at(
                &method.sig.ident,
                format!("`{name}` is generated by #[smoke::server] (config, serve, spawn); rename this method"),
            );
        }
        let mut found: Vec<(&'static HandlerSpec, syn::Attribute)> = Vec::new();
        let mut kept = Vec::new();
        for attr in method.attrs.drain(..) {
            match handler_name(&attr) {
                None => kept.push(attr),
                Some(name) => match HANDLERS.iter().find(|h| h.name == name) {
                    Some(spec) => {
                        if let Meta::List(_) | Meta::NameValue(_) = &attr.meta {
                            errors.at(&attr, format!("#[{name}] takes no arguments"));
                        }
                        found.push((spec, attr));
                    }
                    None => {
                        let hint = closest(&name, HANDLERS.iter().map(|h| h.name))
                            .map(|c| format!("; did you mean #[{c}]?"))
                            .unwrap_or_default();
                        let all = HANDLERS.iter().map(|h| format!("#[{}]", h.name)).collect::<Vec<_>>().join(", ");
                        errors.at(attr.path(), format!("unknown handler #[{name}]{hint} (handlers: {all})"));
                    }
                },
            }
        }
        method.attrs = kept;
        if found.len() > 1 {
            errors.at(&found[1].1, "a method can be only one handler");
        }
        let Some((spec, attr)) = found.into_iter().next() else { continue };
        if let Some((_, earlier)) = model.seen.iter().find(|(name, _)| *name == spec.name) {
            errors.at(&attr, format!("#[{}] is given twice (first on `fn {earlier}`)", spec.name));
            continue;
        }
        model.seen.push((spec.name, method.sig.ident.clone()));
        if let Some(protocol) = spec.protocol.filter(|p| !model.declares(*p)).map(|p| p.name()) {
            errors.at(
                &attr,
                format!(
                    "#[{}] handles {protocol} connections, but this server declares no `{protocol}` listener",
                    spec.name
                ),
            );
        }
        match check_signature(spec, &method.sig, &item.self_ty) {
            Ok(form) => model.handlers.push(BoundHandler { spec, method: method.sig.ident.clone(), form }),
            Err(e) => errors.push(e),
        }
    }
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

/// `Some("on_data")` for `#[on_data]`, `#[smoke::on_data]` and any other `#[on_*]`.
fn handler_name(attr: &syn::Attribute) -> Option<String> {
    let segments: Vec<String> = attr.path().segments.iter().map(|s| s.ident.to_string()).collect();
    match segments.as_slice() {
        [name] if name.starts_with("on_") => Some(name.clone()),
        [krate, name] if krate == "smoke" && name != "server" => Some(name.clone()),
        _ => None,
    }
}

fn check_signature(spec: &HandlerSpec, sig: &syn::Signature, self_ty: &Type) -> syn::Result<Form> {
    let expected = spec.signature();
    let wrong = |tokens: &dyn ToTokens, what: String| {
        syn::Error::new_spanned(tokens, format!("{what}; #[{}] handlers are `{expected}`", spec.name))
    };
    if let Some(asyncness) = &sig.asyncness {
        return Err(wrong(asyncness, "handlers are not async".into()));
    }
    if !sig.generics.params.is_empty() {
        return Err(wrong(&sig.generics, "handlers cannot be generic".into()));
    }
    let form = match sig.receiver() {
        Some(receiver)
            if receiver.reference.is_some() && receiver.mutability.is_some() && receiver.colon_token.is_none() =>
        {
            Form::Method
        }
        Some(receiver) => return Err(wrong(receiver, "the receiver must be `&mut self`".into())),
        None if spec.may_construct && returns_self(&sig.output, self_ty) => Form::Constructor,
        None => {
            let also = if spec.may_construct { " (or a constructor `fn(conn: &mut Conn) -> Self`)" } else { "" };
            return Err(wrong(&sig.ident, format!("missing `&mut self`{also}")));
        }
    };
    let params: Vec<&Type> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(typed) => Some(&*typed.ty),
            FnArg::Receiver(_) => None,
        })
        .collect();
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
        Form::Method => {
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
        (Param::Bytes, Type::Reference(r)) => {
            r.mutability.is_none() && matches!(&*r.elem, Type::Slice(slice) if is_named(&slice.elem, "u8"))
        }
        (Param::CloseReason, ty) => is_named(ty, "CloseReason"),
        (Param::Request, Type::Reference(r)) => r.mutability.is_none() && is_named(&r.elem, "Request"),
        (Param::Response, Type::Reference(r)) => r.mutability.is_some() && is_named(&r.elem, "Response"),
        _ => false,
    }
}

/// After the whole block is read: every declared protocol has its required handlers.
pub(crate) fn completeness(model: &Model, errors: &mut Errors) {
    if model.declared.is_empty() {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("#[smoke::server] needs at least one listener, e.g. `tcp = 9090`; valid keys: {}", key_list()),
        ));
    }
    for spec in HANDLERS.iter().filter(|h| h.required) {
        let Some(protocol) = spec.protocol.filter(|p| model.declares(*p)) else { continue };
        if !model.seen.iter().any(|(name, _)| *name == spec.name) {
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
