//! The HTTP/1.1 upgrade to WebSocket (RFC 6455 §4.2), checked on smoke's parsed request, and
//! the answer a handler gives it ([`Upgrade`]).

use crate::proto::Sink;
use crate::proto::http::{Request, Response};

/// The upgrade request's answer, decided in `#[on_upgrade]`: accept (the default), refuse with a
/// status, or pick a subprotocol the client offered.
#[derive(Debug)]
pub struct Upgrade<'r> {
    offered: Option<&'r str>,
    pub(crate) refused: Option<u16>,
    pub(crate) subprotocol: Option<&'r str>,
}

impl<'r> Upgrade<'r> {
    pub(crate) fn new(req: &Request<'r>) -> Upgrade<'r> {
        Upgrade { offered: req.header_str("sec-websocket-protocol"), refused: None, subprotocol: None }
    }

    /// Refuses the upgrade: the client gets this HTTP status (400..=599; others become 403).
    pub fn refuse(&mut self, status: u16) {
        self.refused = Some(if (400..=599).contains(&status) { status } else { 403 });
    }

    /// The subprotocols the client offered (`Sec-WebSocket-Protocol`), in its order.
    pub fn offered(&self) -> impl Iterator<Item = &'r str> {
        self.offered.into_iter().flat_map(|list| list.split(',')).map(str::trim).filter(|p| !p.is_empty())
    }

    /// Accepts `protocol` as the connection's subprotocol; false (and nothing chosen) when the
    /// client did not offer it, since answering with one it did not offer makes it fail.
    /// Browsers also fail a handshake that offered subprotocols and got none back: when
    /// [`offered`](Upgrade::offered) is not empty, accept one or refuse.
    pub fn accept_subprotocol(&mut self, protocol: &str) -> bool {
        let offered = self.offered().find(|p| *p == protocol);
        self.subprotocol = offered;
        offered.is_some()
    }
}

/// Why an upgrade request is refused: the status and, for a version mismatch, the header
/// telling the client which version to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 400 with the reason.
    BadRequest(&'static str),
    /// 426 with `Sec-WebSocket-Version: 13`.
    UpgradeRequired,
    /// 426 with `Upgrade: websocket`: a plain request where only WebSocket is served.
    NotAnUpgrade,
}

impl Refusal {
    pub(crate) fn write(self, res: &mut Response) {
        match self {
            Refusal::BadRequest(why) => {
                res.status(400).text(why);
            }
            Refusal::UpgradeRequired => {
                res.status(426).header("Sec-WebSocket-Version", "13").text("WebSocket version 13 required");
            }
            Refusal::NotAnUpgrade => {
                res.status(426)
                    .header("Upgrade", "websocket")
                    .header("Sec-WebSocket-Version", "13")
                    .text("this endpoint speaks WebSocket: send an upgrade request");
            }
        }
    }
}

/// True when `value` (a comma-separated header) contains `token`, case-insensitively.
fn has_token(value: &[u8], token: &str) -> bool {
    value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Checks an upgrade request and returns the `Sec-WebSocket-Accept` value for its key.
pub(crate) fn accept(req: &Request<'_>) -> Result<String, Refusal> {
    if req.method() != "GET" {
        return Err(Refusal::BadRequest("a WebSocket upgrade must be a GET"));
    }
    if req.version() != "HTTP/1.1" {
        return Err(Refusal::BadRequest("a WebSocket upgrade needs HTTP/1.1"));
    }
    if req.header("upgrade").is_none() {
        return Err(Refusal::NotAnUpgrade);
    }
    if !req.headers_named("upgrade").any(|v| has_token(v, "websocket")) {
        return Err(Refusal::BadRequest("missing `Upgrade: websocket`"));
    }
    if !req.headers_named("connection").any(|v| has_token(v, "upgrade")) {
        return Err(Refusal::BadRequest("missing `Connection: upgrade`"));
    }
    if req.header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
        return Err(Refusal::UpgradeRequired);
    }
    let key = req.header("sec-websocket-key").map(<[u8]>::trim_ascii).unwrap_or_default();
    // The key is 16 random bytes in base64: 24 characters ending in "==".
    let well_formed = key.len() == 24
        && key.ends_with(b"==")
        && key[..22].iter().all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    if !well_formed {
        return Err(Refusal::BadRequest("missing or malformed Sec-WebSocket-Key"));
    }
    Ok(tungstenite::handshake::derive_accept_key(key))
}

/// The extensions an accepted upgrade agreed on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Agreed {
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<super::deflate::Negotiated>,
}

impl Agreed {
    /// What the request offers that the server (its WebSocket settings) takes.
    pub(crate) fn negotiate(req: &Request<'_>, settings: &super::WsConfig) -> Agreed {
        #[cfg(feature = "deflate")]
        return Agreed {
            deflate: settings
                .deflate
                .then(|| {
                    let offers = req.headers_named("sec-websocket-extensions");
                    super::deflate::negotiate(offers, settings.deflate_dedicated)
                })
                .flatten(),
        };
        #[cfg(not(feature = "deflate"))]
        {
            let _ = (req, settings);
            Agreed {}
        }
    }
}

/// Writes the `101 Switching Protocols` that completes an accepted upgrade.
pub(crate) fn write_switch(sink: &mut impl Sink, accept_key: &str, subprotocol: Option<&str>, agreed: Agreed) {
    sink.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ",
    );
    sink.write(accept_key.as_bytes());
    if let Some(protocol) = subprotocol {
        sink.write(b"\r\nSec-WebSocket-Protocol: ");
        sink.write(protocol.as_bytes());
    }
    #[cfg(feature = "deflate")]
    if let Some(deflate) = agreed.deflate {
        deflate.write_response(sink);
    }
    #[cfg(not(feature = "deflate"))]
    let _ = agreed;
    sink.write(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::NoServer;
    use crate::proto::http::parse_head;

    fn check(raw: &[u8]) -> Result<String, Refusal> {
        let head = parse_head(raw, &Default::default()).unwrap().unwrap();
        let req = Request::new(&head, &[], None, &NoServer);
        accept(&req)
    }

    const GOOD: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn the_rfc_example_key_gets_the_rfc_accept_value() {
        assert_eq!(check(GOOD).unwrap(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn malformed_upgrades_are_refused_with_their_status() {
        let text = std::str::from_utf8(GOOD).unwrap();
        let cases = [
            (text.replace("GET", "POST"), Refusal::BadRequest("a WebSocket upgrade must be a GET")),
            (text.replace("HTTP/1.1", "HTTP/1.0"), Refusal::BadRequest("a WebSocket upgrade needs HTTP/1.1")),
            (text.replace("Upgrade: websocket", "Upgrade: h2c"), Refusal::BadRequest("missing `Upgrade: websocket`")),
            (text.replace("keep-alive, Upgrade", "keep-alive"), Refusal::BadRequest("missing `Connection: upgrade`")),
            (text.replace("Version: 13", "Version: 8"), Refusal::UpgradeRequired),
            (
                text.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"),
                Refusal::BadRequest("missing or malformed Sec-WebSocket-Key"),
            ),
        ];
        for (request, refusal) in cases {
            assert_eq!(check(request.as_bytes()), Err(refusal), "{request}");
        }
    }
}
