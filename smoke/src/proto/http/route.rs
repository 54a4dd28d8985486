//! Route matching for `#[get("/users/:id")]` and friends. The macro checks each pattern at
//! compile time (`smoke_rules::parse_route`) and emits them as a static table, most specific
//! first; matching walks it once.

use smoke_rules::MAX_PARAMS;

use super::Request;

/// One segment of a route pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the path segment.
    Static(&'static str),
    /// Matches any non-empty segment, captured under this name.
    Param(&'static str),
}

/// A route as the macro emits it.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// `GET`, `POST`, ...; a `GET` route also answers `HEAD`.
    pub method: &'static str,
    /// The pattern's segments, without the leading `/`.
    pub segments: &'static [Segment],
}

/// Captured `:name` segments of a matched route.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params<'a> {
    pairs: [(&'static str, &'a str); MAX_PARAMS],
    len: usize,
}

impl<'a> Params<'a> {
    /// The value of `:name`, if the route has it.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs[..self.len].iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
}

/// The outcome of matching a request against a route table.
// `Found` is the common case and lives on the stack for one call; boxing its parameters would
// allocate on every routed request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Dispatch<'a> {
    /// Route `index` matched, with these parameters.
    Found(usize, Params<'a>),
    /// The path matches routes, none for this method; the value is for the `Allow` header.
    MethodNotAllowed(String),
    /// No route has this path.
    NotFound,
}

/// For a pattern without parameters (the common case), whether `path` is exactly it: compared
/// byte by byte, without a splitting iterator or captures. `None` when the pattern has
/// parameters.
fn matches_static(segments: &[Segment], path: &str) -> Option<bool> {
    if segments.iter().any(|s| matches!(s, Segment::Param(_))) {
        return None;
    }
    let Some(rest) = path.strip_prefix('/') else { return Some(false) };
    let mut rest = rest.as_bytes();
    for (i, segment) in segments.iter().enumerate() {
        let Segment::Static(text) = segment else { return None };
        let Some(tail) = rest.strip_prefix(text.as_bytes()) else { return Some(false) };
        rest = tail;
        if i + 1 < segments.len() {
            match rest.split_first() {
                Some((b'/', tail)) => rest = tail,
                _ => return Some(false),
            }
        }
    }
    Some(rest.is_empty())
}

fn matches<'a>(segments: &[Segment], path: &'a str) -> Option<Params<'a>> {
    if let Some(found) = matches_static(segments, path) {
        return found.then(Params::default);
    }
    let mut params = Params::default();
    let mut parts = path.strip_prefix('/')?.split('/');
    for segment in segments {
        let part = parts.next()?;
        match segment {
            Segment::Static(text) if *text == part => {}
            Segment::Param(name) if !part.is_empty() && params.len < MAX_PARAMS => {
                params.pairs[params.len] = (name, part);
                params.len += 1;
            }
            _ => return None,
        }
    }
    // The root pattern has no segments and matches only "/".
    match parts.next() {
        None => Some(params),
        Some("") if segments.is_empty() => parts.next().is_none().then_some(params),
        Some(_) => None,
    }
}

/// `req` with the parameters of the route it matched, for the route's handler.
pub fn with_params<'a>(req: &Request<'a>, params: Params<'a>) -> Request<'a> {
    req.with_params(params)
}

/// Finds the first route (the table is ordered most specific first) for the request's path and
/// method.
pub fn dispatch<'a>(req: &Request<'a>, routes: &[Route]) -> Dispatch<'a> {
    let method = req.method();
    let mut allowed: Vec<&'static str> = Vec::new();
    let mut get_for_head = None;
    for (index, route) in routes.iter().enumerate() {
        let Some(params) = matches(route.segments, req.path()) else { continue };
        if route.method == method {
            return Dispatch::Found(index, params);
        }
        // HEAD falls back to the GET route, unless a HEAD route of its own comes later.
        if method == "HEAD" && route.method == "GET" && get_for_head.is_none() {
            get_for_head = Some((index, params));
        }
        allowed.push(route.method);
        if route.method == "GET" {
            allowed.push("HEAD");
        }
    }
    if let Some((index, params)) = get_for_head {
        return Dispatch::Found(index, params);
    }
    if allowed.is_empty() {
        return Dispatch::NotFound;
    }
    allowed.sort_unstable();
    allowed.dedup();
    Dispatch::MethodNotAllowed(allowed.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Segment::{Param, Static};

    #[test]
    fn segments_match_exactly_and_capture_parameters() {
        let user = [Static("users"), Param("id")];
        assert_eq!(matches(&user, "/users/7").unwrap().get("id"), Some("7"));
        assert!(matches(&user, "/users").is_none());
        assert!(matches(&user, "/users/").is_none(), "a parameter is never empty");
        assert!(matches(&user, "/users/7/posts").is_none());
        assert!(matches(&user, "users/7").is_none());
        let root: [Segment; 0] = [];
        assert!(matches(&root, "/").is_some());
        assert!(matches(&root, "/x").is_none());
        assert!(matches(&root, "//").is_none());
        let plain = [Static("plaintext")];
        assert!(matches(&plain, "/plaintext").is_some());
        for path in ["/plaintext/", "/plain", "/plaintexts", "plaintext", "//plaintext", "/plaintext/x"] {
            assert!(matches(&plain, path).is_none(), "{path}");
        }
        let two = [Static("a"), Static("b")];
        assert!(matches(&two, "/a/b").is_some());
        for path in ["/a", "/a/", "/ab", "/a/b/", "/a//b", "/a/bc"] {
            assert!(matches(&two, path).is_none(), "{path}");
        }
        let nested = [Static("a"), Param("x"), Static("b"), Param("y")];
        let params = matches(&nested, "/a/1/b/2").unwrap();
        assert_eq!((params.get("x"), params.get("y"), params.get("z")), (Some("1"), Some("2"), None));
    }
}
