//! Route matching for `#[get("/users/:id")]` and friends. The macro checks each pattern at
//! compile time (`smoke_rules::parse_route`) and emits them as a static table, most specific
//! first; matching walks it once.

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
    /// The whole pattern when it has no parameters (`/plaintext`), matched by one comparison.
    pub exact: Option<&'static str>,
}

/// The `:name` segments of a matched route: its pattern and the path it matched, read when a
/// handler asks. Two references, so every routed request carries them for the cost of two
/// words rather than a table of captures filled whether or not the handler looks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Params<'a> {
    segments: &'static [Segment],
    /// The request's path, UTF-8 (the head's parse checked it).
    path: &'a [u8],
}

impl<'a> Params<'a> {
    /// The value of `:name`, if the route has it.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        let mut parts = self.path.strip_prefix(b"/")?.split(|&b| b == b'/');
        let part = self.segments.iter().find_map(|segment| {
            let part = parts.next()?;
            matches!(segment, Segment::Param(n) if *n == name).then_some(part)
        })?;
        // Cut at a `/` of a UTF-8 path: UTF-8 itself.
        std::str::from_utf8(part).ok()
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
fn matches_static(segments: &[Segment], path: &[u8]) -> Option<bool> {
    if segments.iter().any(|s| matches!(s, Segment::Param(_))) {
        return None;
    }
    let Some(mut rest) = path.strip_prefix(b"/") else { return Some(false) };
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

fn matches(segments: &[Segment], path: &[u8]) -> bool {
    if let Some(found) = matches_static(segments, path) {
        return found;
    }
    let Some(mut parts) = path.strip_prefix(b"/").map(|rest| rest.split(|&b| b == b'/')) else { return false };
    for segment in segments {
        let Some(part) = parts.next() else { return false };
        match segment {
            Segment::Static(text) if text.as_bytes() == part => {}
            Segment::Param(_) if !part.is_empty() => {}
            _ => return false,
        }
    }
    // The root pattern has no segments and matches only "/".
    match parts.next() {
        None => true,
        Some(b"") if segments.is_empty() => parts.next().is_none(),
        Some(_) => false,
    }
}

/// The request's method and path as bytes, for the `match` the macro emits over the routes
/// without parameters.
pub fn method_and_path<'a>(req: &Request<'a>) -> (&'a [u8], &'a [u8]) {
    (req.method_bytes(), req.path_bytes())
}

/// `req` with the parameters of the route it matched, for the route's handler.
pub fn with_params<'a>(req: &Request<'a>, params: Params<'a>) -> Request<'a> {
    req.with_params(params)
}

/// Finds the first route (the table is ordered most specific first) for the request's path and
/// method.
pub fn dispatch<'a>(req: &Request<'a>, routes: &[Route]) -> Dispatch<'a> {
    let (method, path) = (req.method_bytes(), req.path_bytes());
    let mut allowed: Vec<&'static str> = Vec::new();
    let mut get_for_head = None;
    for (index, route) in routes.iter().enumerate() {
        let matched = match route.exact {
            Some(exact) => exact.as_bytes() == path,
            None => matches(route.segments, path),
        };
        if !matched {
            continue;
        }
        let params = Params { segments: route.segments, path };
        if route.method.as_bytes() == method {
            return Dispatch::Found(index, params);
        }
        // HEAD falls back to the GET route, unless a HEAD route of its own comes later.
        if method == b"HEAD" && route.method == "GET" && get_for_head.is_none() {
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
        static USER: [Segment; 2] = [Static("users"), Param("id")];
        assert!(matches(&USER, b"/users/7"));
        assert_eq!(Params { segments: &USER, path: b"/users/7" }.get("id"), Some("7"));
        assert!(!matches(&USER, b"/users"));
        assert!(!matches(&USER, b"/users/"), "a parameter is never empty");
        assert!(!matches(&USER, b"/users/7/posts"));
        assert!(!matches(&USER, b"users/7"));
        let root: [Segment; 0] = [];
        assert!(matches(&root, b"/"));
        assert!(!matches(&root, b"/x"));
        assert!(!matches(&root, b"//"));
        let plain = [Static("plaintext")];
        assert!(matches(&plain, b"/plaintext"));
        for path in ["/plaintext/", "/plain", "/plaintexts", "plaintext", "//plaintext", "/plaintext/x"] {
            assert!(!matches(&plain, path.as_bytes()), "{path}");
        }
        let two = [Static("a"), Static("b")];
        assert!(matches(&two, b"/a/b"));
        for path in ["/a", "/a/", "/ab", "/a/b/", "/a//b", "/a/bc"] {
            assert!(!matches(&two, path.as_bytes()), "{path}");
        }
        static NESTED: [Segment; 4] = [Static("a"), Param("x"), Static("b"), Param("y")];
        assert!(matches(&NESTED, b"/a/1/b/2"));
        let params = Params { segments: &NESTED, path: b"/a/1/b/2" };
        assert_eq!((params.get("x"), params.get("y"), params.get("z")), (Some("1"), Some("2"), None));
        assert_eq!(Params::default().get("x"), None);
    }
}
