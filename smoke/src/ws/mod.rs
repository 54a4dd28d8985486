//! WebSocket (RFC 6455) pieces as plain functions over buffers, ahead of their wiring into the
//! event loop: the upgrade handshake checks, frame parsing with tungstenite's `FrameHeader` over
//! smoke's own buffers (not its stream-owning `WebSocket`), word-at-a-time unmasking, message
//! reassembly with UTF-8 validation across fragments, close-frame rules, and frame encoding.

pub(crate) mod codec;
pub(crate) mod handshake;

/// Close codes smoke sends when a peer breaks the protocol.
pub(crate) mod close_code {
    /// 1000: normal closure.
    pub(crate) const NORMAL: u16 = 1000;
    /// 1002: protocol error (unmasked client frame, reserved bits or opcodes, bad control frame,
    /// broken fragmentation, malformed close payload).
    pub(crate) const PROTOCOL_ERROR: u16 = 1002;
    /// 1007: text that is not UTF-8.
    pub(crate) const INVALID_PAYLOAD: u16 = 1007;
    /// 1009: a message above `max_message`.
    pub(crate) const MESSAGE_TOO_BIG: u16 = 1009;
}
