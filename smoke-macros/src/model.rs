//! What the attribute may say: the keys, the protocols, the handlers and their signatures.
//! A new protocol adds rows to these tables; parsing and expansion are driven by them.

use proc_macro2::Span;

pub(crate) use smoke_rules::Protocol;

pub(crate) use crate::keys::{KEYS, KeyKind, KeySpec};

/// One argument of a handler, after the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Param {
    /// `conn: &mut Conn`
    Conn,
    /// `input: &[u8]`
    Bytes,
    /// `why: CloseReason`
    CloseReason,
    /// `req: &Request`
    Request,
    /// `res: &mut Response`
    Response,
    /// `upgrade: &mut Upgrade`
    Upgrade,
    /// `ws: &mut WsConn`
    WsConn,
    /// `message: Message`
    Message,
    /// `code: u16`
    Code,
    /// `reason: &str`
    Reason,
    /// `peer: &mut Peer`
    Peer,
    /// `worker: &mut Worker`
    Worker,
    /// `packet: &[u8]`
    Packet,
    /// `player: &mut Player`
    Player,
    /// `channel: Channel`
    Channel,
    /// `why: LeaveReason`
    LeaveReason,
}

impl Param {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Param::Conn => "conn: &mut Conn",
            Param::Bytes => "input: &[u8]",
            Param::CloseReason => "why: CloseReason",
            Param::Request => "req: &Request",
            Param::Response => "res: &mut Response",
            Param::Upgrade => "upgrade: &mut Upgrade",
            Param::WsConn => "ws: &mut WsConn",
            Param::Message => "message: Message",
            Param::Code => "code: u16",
            Param::Reason => "reason: &str",
            Param::Peer => "peer: &mut Peer",
            Param::Worker => "worker: &mut Worker",
            Param::Packet => "packet: &[u8]",
            Param::Player => "player: &mut Player",
            Param::Channel => "channel: Channel",
            Param::LeaveReason => "why: LeaveReason",
        }
    }

    /// The argument's name in the generated forwarding method.
    pub(crate) fn ident(self) -> &'static str {
        match self {
            Param::Conn => "conn",
            Param::Bytes => "input",
            Param::CloseReason => "reason",
            Param::Request => "req",
            Param::Response => "res",
            Param::Upgrade => "upgrade",
            Param::WsConn => "ws",
            Param::Message => "message",
            Param::Code => "code",
            Param::Reason => "reason",
            Param::Peer => "peer",
            Param::Worker => "worker",
            Param::Packet => "packet",
            Param::Player => "player",
            Param::Channel => "channel",
            Param::LeaveReason => "why",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Returns {
    Nothing,
    Usize,
}

/// The trait a generated method belongs to: raw TCP's `smoke::Handler`, the other protocols'
/// `smoke::Session`, or the server-wide `smoke::Server`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Handler,
    Session,
    Server,
}

/// A handler attribute and the trait method it becomes.
pub(crate) struct HandlerSpec {
    pub(crate) name: &'static str,
    /// The trait method; an attribute with several signatures (`on_close`, `on_timer`) has a row
    /// for each, told apart by their argument types.
    pub(crate) method: &'static str,
    /// The trait `method` belongs to.
    pub(crate) part: Part,
    /// The protocol whose connections it handles; `None`: every listener's.
    pub(crate) protocol: Option<Protocol>,
    /// A server declaring `protocol` must give this handler.
    pub(crate) required: bool,
    pub(crate) params: &'static [Param],
    pub(crate) returns: Returns,
    /// Also accepted without `self`, returning `Self`: the session constructor.
    pub(crate) may_construct: bool,
    /// Takes no `self`: a per-worker function (`on_tick`).
    pub(crate) associated: bool,
    /// Routes, when there are any, stand in for this required handler (`on_request`).
    pub(crate) routes_suffice: bool,
}

impl HandlerSpec {
    pub(crate) fn signature(&self) -> String {
        let params: Vec<&str> = self.params.iter().map(|p| p.describe()).collect();
        let returns = match self.returns {
            Returns::Nothing => "",
            Returns::Usize => " -> usize",
        };
        let receiver = if self.associated { "" } else { "&mut self, " };
        format!("fn({receiver}{}){returns}", params.join(", "))
    }
}

pub(crate) const HANDLERS: &[HandlerSpec] = &[
    HandlerSpec {
        name: "on_connect",
        method: "on_connect",
        part: Part::Handler,
        protocol: None,
        required: false,
        params: &[Param::Conn],
        returns: Returns::Nothing,
        may_construct: true,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_data",
        method: "on_data",
        part: Part::Handler,
        protocol: Some(Protocol::Tcp),
        required: true,
        params: &[Param::Conn, Param::Bytes],
        returns: Returns::Usize,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_write",
        method: "on_write",
        part: Part::Handler,
        protocol: Some(Protocol::Tcp),
        required: false,
        params: &[Param::Conn],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_close",
        method: "on_close",
        part: Part::Handler,
        protocol: None,
        required: false,
        params: &[Param::Conn, Param::CloseReason],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_request",
        method: "on_request",
        part: Part::Session,
        protocol: Some(Protocol::Http),
        required: true,
        params: &[Param::Request, Param::Response],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: true,
    },
    HandlerSpec {
        name: "on_upgrade",
        method: "on_upgrade",
        part: Part::Session,
        protocol: Some(Protocol::Ws),
        required: false,
        params: &[Param::Request, Param::Upgrade],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_open",
        method: "on_open",
        part: Part::Session,
        protocol: Some(Protocol::Ws),
        required: false,
        params: &[Param::WsConn],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_message",
        method: "on_message",
        part: Part::Session,
        protocol: Some(Protocol::Ws),
        required: true,
        params: &[Param::WsConn, Param::Message],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_close",
        method: "on_ws_close",
        part: Part::Session,
        protocol: Some(Protocol::Ws),
        required: false,
        params: &[Param::WsConn, Param::Code, Param::Reason],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_drain",
        method: "on_drain",
        part: Part::Session,
        protocol: Some(Protocol::Ws),
        required: false,
        params: &[Param::WsConn],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_datagram",
        method: "on_datagram",
        part: Part::Session,
        protocol: Some(Protocol::Udp),
        required: true,
        params: &[Param::Peer, Param::Packet],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_timer",
        method: "on_timer",
        part: Part::Handler,
        protocol: None,
        required: false,
        params: &[Param::Conn],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_timer",
        method: "on_peer_timer",
        part: Part::Session,
        protocol: Some(Protocol::Udp),
        required: false,
        params: &[Param::Peer],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_close",
        method: "on_peer_close",
        part: Part::Session,
        protocol: Some(Protocol::Udp),
        required: false,
        params: &[Param::Peer, Param::CloseReason],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_join",
        method: "on_join",
        part: Part::Session,
        protocol: Some(Protocol::Game),
        required: false,
        params: &[Param::Player],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_message",
        method: "on_game_message",
        part: Part::Session,
        protocol: Some(Protocol::Game),
        required: true,
        params: &[Param::Player, Param::Channel, Param::Packet],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_leave",
        method: "on_leave",
        part: Part::Session,
        protocol: Some(Protocol::Game),
        required: false,
        params: &[Param::Player, Param::LeaveReason],
        returns: Returns::Nothing,
        may_construct: false,
        associated: false,
        routes_suffice: false,
    },
    HandlerSpec {
        name: "on_tick",
        method: "on_tick",
        part: Part::Server,
        protocol: None,
        required: false,
        params: &[Param::Worker],
        returns: Returns::Nothing,
        may_construct: false,
        associated: true,
        routes_suffice: false,
    },
];

/// The signature every route handler shares (that of `on_request`).
pub(crate) const ROUTE_HANDLER: HandlerSpec = HandlerSpec {
    name: "route",
    method: "on_request",
    part: Part::Session,
    protocol: Some(Protocol::Http),
    required: false,
    params: &[Param::Request, Param::Response],
    returns: Returns::Nothing,
    may_construct: false,
    associated: false,
    routes_suffice: false,
};

/// Route attributes and the method each fixes (`route` names its method itself). Their
/// handlers have `on_request`'s signature.
pub(crate) const ROUTE_ATTRIBUTES: &[(&str, Option<&str>)] =
    &[("get", Some("GET")), ("post", Some("POST")), ("put", Some("PUT")), ("delete", Some("DELETE")), ("route", None)];

/// A route pattern segment.
pub(crate) use smoke_rules::Segment as RouteSegment;

/// `#[get("/users/:id")] fn user(...)`, checked.
pub(crate) struct RouteModel {
    pub(crate) method: String,
    pub(crate) pattern: String,
    pub(crate) segments: Vec<RouteSegment>,
    pub(crate) handler: syn::Ident,
}

impl RouteModel {
    /// Static segments sort before parameters, position by position: `/users/me` is tried
    /// before `/users/:id`.
    pub(crate) fn specificity(&self) -> Vec<u8> {
        self.segments.iter().map(|s| u8::from(matches!(s, RouteSegment::Param(_)))).collect()
    }

    /// The one path a pattern without parameters matches (`/plaintext`, `/a/b`, `/`).
    pub(crate) fn exact_path(&self) -> Option<String> {
        let texts = self.segments.iter().map(|segment| match segment {
            RouteSegment::Static(text) => Some(text.as_str()),
            RouteSegment::Param(_) => None,
        });
        Some(format!("/{}", texts.collect::<Option<Vec<_>>>()?.join("/")))
    }

    /// Two routes conflict when a request could match both equally: same method, and the same
    /// segments with parameters (whatever their names) in the same places.
    pub(crate) fn conflicts_with(&self, other: &RouteModel) -> bool {
        self.method == other.method
            && self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|pair| match pair {
                (RouteSegment::Static(a), RouteSegment::Static(b)) => a == b,
                (RouteSegment::Param(_), RouteSegment::Param(_)) => true,
                _ => false,
            })
    }
}

/// Methods the macro generates on the session type; a user method may not take these names.
pub(crate) const GENERATED_METHODS: &[&str] = &["config", "serve", "spawn"];

#[derive(Debug)]
pub(crate) struct Listener {
    pub(crate) protocol: Protocol,
    pub(crate) value: smoke_rules::Listen,
    pub(crate) span: Span,
}

/// A setting other than a listener, as it will be applied to the `Config`.
#[derive(Debug)]
pub(crate) enum Setting {
    Bind(std::net::IpAddr),
    Threads(u64),
    Count { setter: &'static str, value: u64 },
    Millis { setter: &'static str, value: u64, optional: bool },
    Text { setter: &'static str, value: String },
    Flag { setter: &'static str, value: bool },
    Listen { setter: &'static str, value: smoke_rules::Listen },
}

/// How a handler method is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Method,
    Constructor,
    /// An associated function without `self` (`on_tick`).
    Associated,
}

pub(crate) struct BoundHandler {
    pub(crate) spec: &'static HandlerSpec,
    pub(crate) method: syn::Ident,
    pub(crate) form: Form,
    /// The method's `#[cfg(..)]`s, repeated on its forwarding method so both come and go together.
    pub(crate) cfgs: Vec<syn::Attribute>,
}

/// Everything the attribute and the impl block said, checked.
#[derive(Default)]
pub(crate) struct Model {
    /// The `crate = ...` key: the path the generated code reaches smoke by (`::smoke` without it).
    pub(crate) krate: Option<syn::Path>,
    /// The attribute itself had errors: what it declares is unknown, so checks that depend on
    /// it (missing listener, missing handler, handler without its protocol) would only add noise.
    pub(crate) attribute_failed: bool,
    pub(crate) declared: Vec<Protocol>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) settings: Vec<Setting>,
    pub(crate) handlers: Vec<BoundHandler>,
    pub(crate) routes: Vec<RouteModel>,
    /// A route attribute was written, well-formed or not (so a typo in one is not also reported
    /// as a missing `on_request`).
    pub(crate) saw_route: bool,
    /// Every handler attribute seen with its method, well-formed or not (so one mistake in a
    /// signature is not also reported as a missing handler).
    pub(crate) seen: Vec<(&'static str, syn::Ident)>,
}

impl Model {
    /// The attribute names this protocol's key (even with a value that did not parse, so a
    /// typo in a port is not also reported as a missing listener).
    pub(crate) fn declares(&self, protocol: Protocol) -> bool {
        self.declared.contains(&protocol)
    }
}

/// The closest of `candidates` to `word` by edit distance, if it is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The listener keys are the protocols' names (`smoke_rules::Protocol`), one each: the
    /// environment overrides (`SMOKE_<NAME>`) and the runtime's messages use the same names.
    #[test]
    fn every_protocol_has_its_listener_key() {
        for protocol in Protocol::ALL {
            let keys: Vec<&KeySpec> =
                KEYS.iter().filter(|k| matches!(k.kind, KeyKind::Listener(p) if p == protocol)).collect();
            assert_eq!(keys.len(), 1, "{protocol:?}");
            assert_eq!(keys[0].name, protocol.name());
        }
    }
}
