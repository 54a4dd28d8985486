//! Route patterns (`/users/:id/posts`): what `#[get(..)]` and its siblings accept.

use std::fmt;

/// Route parameters (`:name` segments) per pattern. The router captures them into a fixed array
/// on the stack, so the bound is part of the type.
pub const MAX_PARAMS: usize = 8;

/// One segment of a checked route pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    /// Must equal the path segment.
    Static(String),
    /// Matches any non-empty segment, captured under this name.
    Param(String),
}

/// Why a route pattern was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// It does not start with `/`.
    NoLeadingSlash,
    /// `//` or a trailing `/`.
    EmptySegment,
    /// `:` followed by something that is not an identifier.
    BadParamName(String),
    /// The same parameter twice.
    RepeatedParam(String),
    /// A static segment with a character a path cannot match.
    BadCharacter(String),
    /// More than [`MAX_PARAMS`] parameters (how many).
    TooManyParams(usize),
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteError::NoLeadingSlash => f.write_str("it must start with `/`"),
            RouteError::EmptySegment => f.write_str("empty segment (`//` or a trailing `/`)"),
            RouteError::BadParamName(name) => write!(f, "`:{name}` is not a parameter name"),
            RouteError::RepeatedParam(name) => write!(f, "parameter `:{name}` appears twice"),
            RouteError::BadCharacter(part) => {
                write!(f, "segment `{part}` has a character paths cannot match (`?`, `#`, `:`, space)")
            }
            RouteError::TooManyParams(count) => write!(f, "{count} parameters; at most {MAX_PARAMS}"),
        }
    }
}

impl std::error::Error for RouteError {}

/// Splits `/`, `/users`, `/users/:id/posts` into segments after the leading `/`: none empty,
/// `:name` parameters with distinct identifier names, at most [`MAX_PARAMS`] of them. The root
/// pattern has no segments.
pub fn parse_route(pattern: &str) -> Result<Vec<Segment>, RouteError> {
    let rest = pattern.strip_prefix('/').ok_or(RouteError::NoLeadingSlash)?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let mut segments = Vec::new();
    for part in rest.split('/') {
        if part.is_empty() {
            return Err(RouteError::EmptySegment);
        }
        if let Some(name) = part.strip_prefix(':') {
            let identifier = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !identifier {
                return Err(RouteError::BadParamName(name.to_owned()));
            }
            if segments.iter().any(|s| *s == Segment::Param(name.to_owned())) {
                return Err(RouteError::RepeatedParam(name.to_owned()));
            }
            segments.push(Segment::Param(name.to_owned()));
        } else if part.bytes().any(|b| b"?#: ".contains(&b) || b.is_ascii_control()) {
            return Err(RouteError::BadCharacter(part.to_owned()));
        } else {
            segments.push(Segment::Static(part.to_owned()));
        }
    }
    let params = segments.iter().filter(|s| matches!(s, Segment::Param(_))).count();
    if params > MAX_PARAMS {
        return Err(RouteError::TooManyParams(params));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_split_into_checked_segments() {
        assert_eq!(parse_route("/"), Ok(vec![]));
        assert_eq!(parse_route("/users/:id"), Ok(vec![Segment::Static("users".into()), Segment::Param("id".into())]));
        assert_eq!(parse_route("users"), Err(RouteError::NoLeadingSlash));
        assert_eq!(parse_route("/a//b"), Err(RouteError::EmptySegment));
        assert_eq!(parse_route("/a/"), Err(RouteError::EmptySegment));
        assert_eq!(parse_route("/:1x"), Err(RouteError::BadParamName("1x".into())));
        assert_eq!(parse_route("/:a/:a"), Err(RouteError::RepeatedParam("a".into())));
        assert_eq!(parse_route("/a?b"), Err(RouteError::BadCharacter("a?b".into())));
        assert_eq!(parse_route("/:a/:b/:c/:d/:e/:f/:g/:h/:i"), Err(RouteError::TooManyParams(9)));
    }
}
