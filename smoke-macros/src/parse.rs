//! Reads the attribute (`tcp = 9090, threads = 2, ...`) into the [`Model`]'s listeners and
//! settings, collecting every error; `methods.rs` reads the impl block.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprArray, ExprLit, Lit, Meta, Token};

use crate::model::{KEYS, KeyKind, KeySpec, Listener, Model, Setting, closest};

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

pub(crate) fn key_list() -> String {
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
    let mut seen: Vec<String> = Vec::new();
    let mut served_on = Vec::new();
    for meta in metas {
        if let Some(KeyKind::Listener(protocol)) = KEYS.iter().find(|k| meta.path().is_ident(k.name)).map(|k| k.kind) {
            // A TLS listener's handlers are its family's (`https` serves `#[get]`).
            model.declared.push(protocol.family());
        }
        let Meta::NameValue(pair) = &meta else {
            errors.at(&meta, format!("expected `key = value`; valid keys: {}", key_list()));
            continue;
        };
        let Some(name) = pair.path.get_ident().map(|i| i.to_string()) else {
            errors.at(&pair.path, format!("expected a key name; valid keys: {}", key_list()));
            continue;
        };
        let spec = KEYS.iter().find(|k| k.name == name);
        if spec.is_none() && name != "crate" {
            let hint = closest(&name, KEYS.iter().map(|k| k.name))
                .map(|c| format!("did you mean `{c}`? "))
                .unwrap_or_default();
            errors.at(&pair.path, format!("unknown key `{name}`; {hint}valid keys: {}", key_list()));
            continue;
        }
        if seen.contains(&name) {
            errors.at(&pair.path, format!("`{name}` is given twice"));
            continue;
        }
        seen.push(name.clone());
        let Some(spec) = spec else {
            crate_path(ungrouped(&pair.value), model, errors);
            continue;
        };
        if let KeyKind::Path { needs, .. } | KeyKind::Interface { needs } = spec.kind {
            served_on.push((pair.path.clone(), needs));
        }
        key_value(spec, &name, ungrouped(&pair.value), model, errors);
    }
    for (key, needs) in served_on {
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

/// `crate = "path"` (or a bare path): where the generated code finds smoke, for a renamed
/// dependency.
fn crate_path(value: &Expr, model: &mut Model, errors: &mut Errors) {
    let path = match value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => s.parse::<syn::Path>().ok(),
        Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
        _ => None,
    };
    match path {
        Some(path) => model.krate = Some(path),
        None => errors.at(value, "`crate` expects the path smoke is known by, e.g. `crate = \"my_smoke\"`"),
    }
}

/// A `File` key's value: one path string, or an array of them, each a setter call.
fn file_paths(spec: &KeySpec, name: &str, value: &Expr, model: &mut Model, errors: &mut Errors) {
    let items: Vec<&Expr> = match value {
        Expr::Array(ExprArray { elems, .. }) if !elems.is_empty() => elems.iter().map(ungrouped).collect(),
        other => vec![other],
    };
    for item in items {
        match item {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if !s.value().is_empty() => {
                model.settings.push(Setting::Text { setter: spec.name, value: s.value() })
            }
            other => {
                let example = if name == "tls_key" { "key.pem" } else { "cert.pem" };
                errors.push(syn::Error::new_spanned(
                    other,
                    format!("`{name}` expects a PEM file's path, e.g. \"{example}\", or an array of them"),
                ))
            }
        }
    }
}

/// One `key = value` of the attribute, checked against its kind.
fn key_value(spec: &KeySpec, name: &str, value: &Expr, model: &mut Model, errors: &mut Errors) {
    let setting = match spec.kind {
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
            return;
        }
        KeyKind::Bind => bind_value(value),
        KeyKind::Threads => threads_value(value),
        KeyKind::Count { min, max } => match integer(value, name) {
            Ok(count) if (min..=max).contains(&count) => Ok(Setting::Count { setter: spec.name, value: count }),
            Ok(count) if count < min => Err(syn::Error::new_spanned(value, format!("`{name}` must be at least {min}"))),
            Ok(_) => Err(syn::Error::new_spanned(value, format!("`{name}` must be at most {max}"))),
            Err(e) => Err(e),
        },
        KeyKind::Millis { setter, optional } => match integer(value, name) {
            Ok(ms) if ms >= 1 => Ok(Setting::Millis { setter, value: ms, optional }),
            Ok(_) => {
                Err(syn::Error::new_spanned(value, format!("`{name}` must be at least 1; leave it out for no timeout")))
            }
            Err(e) => Err(e),
        },
        KeyKind::Path { declares, .. } => {
            model.declared.push(declares);
            match value {
                Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value().starts_with('/') => {
                    Ok(Setting::Text { setter: spec.name, value: s.value() })
                }
                other => Err(syn::Error::new_spanned(
                    other,
                    format!("`{name}` expects a path string starting with `/`, e.g. \"/ws\""),
                )),
            }
        }
        KeyKind::Interface { .. } => match value {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if smoke_rules::check_interface_name(&s.value()).is_ok() => {
                Ok(Setting::Text { setter: spec.name, value: s.value() })
            }
            other => Err(syn::Error::new_spanned(
                other,
                format!("`{name}` expects a network interface name such as \"eth0\""),
            )),
        },
        KeyKind::Broker => match value {
            Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => smoke_rules::check_cluster_url(&s.value())
                .map(|()| Setting::Text { setter: spec.name, value: s.value() })
                .map_err(|why| syn::Error::new_spanned(s, format!("`{name}`: {why}"))),
            other => Err(syn::Error::new_spanned(other, format!("`{name}` expects a string: \"nats://HOST:PORT\""))),
        },
        KeyKind::File => return file_paths(spec, name, value, model, errors),
        KeyKind::Admin => listen_value(value).map(|value| Setting::Listen { setter: spec.name, value }),
        KeyKind::Flag => match value {
            Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(Setting::Flag { setter: spec.name, value: b.value }),
            other => Err(syn::Error::new_spanned(other, format!("`{name}` expects `true` or `false`"))),
        },
    };
    match setting {
        Ok(setting) => model.settings.push(setting),
        Err(e) => errors.push(e),
    }
}

fn bind_value(value: &Expr) -> syn::Result<Setting> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => s.value().parse().map(Setting::Bind).map_err(|_| {
            syn::Error::new_spanned(
                s,
                format!("`bind` expects an IP address such as \"0.0.0.0\" or \"::\", not {:?}", s.value()),
            )
        }),
        other => {
            Err(syn::Error::new_spanned(other, "`bind` expects an IP address string such as \"0.0.0.0\" or \"::\""))
        }
    }
}

fn threads_value(value: &Expr) -> syn::Result<Setting> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) if s.value() == "auto" => Ok(Setting::Threads(0)),
        Expr::Lit(ExprLit { lit: Lit::Int(n), .. }) => match n.base10_parse::<u64>() {
            Ok(count) if count >= 1 => Ok(Setting::Threads(count)),
            _ => Err(syn::Error::new_spanned(n, "`threads` must be at least 1 (or \"auto\" for one per core)")),
        },
        other => Err(syn::Error::new_spanned(other, "`threads` expects a number or \"auto\"")),
    }
}

/// A value passed through `macro_rules` (`$port:expr`) arrives wrapped in an invisible group.
pub(crate) fn ungrouped(value: &Expr) -> &Expr {
    match value {
        Expr::Group(group) => ungrouped(&group.expr),
        Expr::Paren(paren) => ungrouped(&paren.expr),
        other => other,
    }
}

pub(crate) fn integer(value: &Expr, name: &str) -> syn::Result<u64> {
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
