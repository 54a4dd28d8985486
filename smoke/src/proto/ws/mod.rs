//! WebSocket (RFC 6455) without I/O: frames over smoke's own buffers (`codec.rs`: parsing with
//! tungstenite's `FrameHeader`, not its stream-owning `WebSocket`; word-at-a-time unmasking;
//! reassembly with UTF-8 validation across fragments; encoding), the HTTP/1.1 upgrade
//! (`handshake.rs`), and one upgraded connection's machine (`connection.rs`: messages, pings,
//! the close handshake, the idle check).

mod codec;
mod connection;
#[cfg(feature = "deflate")]
pub(crate) mod deflate;
mod handshake;

use std::time::Duration;

pub use codec::Message;
#[cfg(feature = "deflate")]
pub(crate) use codec::split_frame;
pub(crate) use codec::{FrameHead, write_frame};
pub(crate) use connection::{Connection, Events, State};
pub use handshake::Upgrade;
pub(crate) use handshake::{Agreed, accept, write_switch};

/// The largest LZ77 window (bits): what publications are compressed with.
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// Default [`Config::max_message`](crate::Config::max_message): 1 MiB.
pub const DEFAULT_MAX_MESSAGE: usize = 1 << 20;
/// Default [`Config::max_backpressure`](crate::Config::max_backpressure): 1 MiB.
pub const DEFAULT_MAX_BACKPRESSURE: usize = 1 << 20;
/// Default [`Config::ws_idle_timeout`](crate::Config::ws_idle_timeout): 120 s.
pub const DEFAULT_WS_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// WebSocket settings of a server (see the [`Config`](crate::Config) setters of the same names).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsConfig {
    /// Path on the HTTP listeners where upgrades are accepted.
    pub path: Option<String>,
    /// Largest message, all fragments together.
    pub max_message: usize,
    /// Output buffered per connection above which sends and deliveries are dropped.
    pub max_backpressure: usize,
    /// Close instead of dropping at `max_backpressure`.
    pub close_on_backpressure_limit: bool,
    /// Silence before a ping, and again before a close.
    pub idle_timeout: Option<Duration>,
    /// permessage-deflate offered to clients that ask for it.
    pub deflate: bool,
    /// ... with a compression context of its own per connection, kept between messages.
    pub deflate_dedicated: bool,
}

impl Default for WsConfig {
    fn default() -> WsConfig {
        WsConfig {
            path: None,
            max_message: DEFAULT_MAX_MESSAGE,
            max_backpressure: DEFAULT_MAX_BACKPRESSURE,
            close_on_backpressure_limit: false,
            idle_timeout: Some(DEFAULT_WS_IDLE_TIMEOUT),
            deflate: false,
            deflate_dedicated: false,
        }
    }
}

/// Close codes (RFC 6455 §7.4.1) for [`WsConn::close`](crate::ws::WsConn::close) and what
/// `#[on_close]` reports.
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: going away (smoke sends it when closing an idle connection or shutting down).
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error (unmasked client frame, reserved bits or opcodes, bad control frame,
    /// broken fragmentation, malformed close payload).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1005: reported when the peer's close frame carried no code (never sent).
    pub const NO_STATUS: u16 = 1005;
    /// 1006: reported when the connection ended without a close frame (never sent).
    pub const ABNORMAL: u16 = 1006;
    /// 1007: text that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// 1008: a policy violation.
    pub const POLICY: u16 = 1008;
    /// 1009: a message above `max_message`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}
