//! TLS 1.3 for a server connection, sans-IO: bytes from the peer in, plaintext and bytes for
//! the peer out. rustls (its unbuffered API) runs the handshake; then its traffic keys move to
//! smoke's own record layer (`record.rs`), which opens records in place and seals into the
//! caller's buffer, so the steady state allocates nothing. rustls keeps what it needs for key
//! updates (its kernel-connection API, made for kTLS, which is the same hand-over).

mod record;

use std::ops::Range;
use std::sync::Arc;

use rustls::kernel::KernelConnection;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ConnectionTrafficSecrets, ServerConfig};

use record::{Direction, Opened, RecordError, content};

/// Records sealed under one key before smoke moves to a fresh one (a TLS 1.3 key update):
/// well inside AES-GCM's confidentiality limit of 2^24.5 records (RFC 8446 §5.5).
const REKEY_AFTER: u64 = 1 << 23;
/// The handshake message type of a key update (RFC 8446 §4.6.3).
const KEY_UPDATE: u8 = 24;

/// Alert descriptions smoke sends (RFC 8446 §6).
mod alert {
    pub(super) const CLOSE_NOTIFY: u8 = 0;
    pub(super) const UNEXPECTED_MESSAGE: u8 = 10;
    pub(super) const BAD_RECORD_MAC: u8 = 20;
    pub(super) const DECODE_ERROR: u8 = 50;
}

/// Why a TLS connection cannot go on.
#[derive(Debug)]
pub(crate) enum TlsError {
    /// The handshake failed (rustls's reason: a bad ClientHello, no common cipher, not TLS).
    Handshake(rustls::Error),
    /// A record after the handshake did not open.
    Record(RecordError),
    /// The peer sent a fatal alert (its description).
    Alert(u8),
    /// A post-handshake message smoke does not take, or a key update that failed.
    Unexpected,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            TlsError::Record(RecordError::Malformed) => f.write_str("malformed TLS record"),
            TlsError::Record(RecordError::BadRecordMac) => f.write_str("TLS record failed to authenticate"),
            TlsError::Alert(description) => write!(f, "the peer sent TLS alert {description}"),
            TlsError::Unexpected => f.write_str("unexpected TLS message after the handshake"),
        }
    }
}

/// What one step of [`TlsSession::read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing more until more input arrives.
    NeedInput,
    /// Application data, decrypted where it lay: this range of the input given.
    Data(Range<usize>),
    /// Application data that came with the handshake (rustls decrypted it into its own buffer),
    /// reported after [`Step::Established`].
    Held(Vec<u8>),
    /// The handshake has just completed: application data may be sealed from now on.
    Established,
    /// The peer sent close_notify: it sends nothing more.
    PeerClosed,
}

/// One connection's TLS.
pub(crate) struct TlsSession {
    state: State,
    /// Application data that came in the same read as the client's Finished: handed over
    /// (as [`Step::Held`]) once the handshake's completion has been.
    held: Vec<u8>,
}

enum State {
    /// rustls runs the handshake (boxed: it is large, and gone once the handshake is).
    Handshaking(Box<UnbufferedServerConnection>),
    Open(Box<Open>),
    /// Failed or closed: nothing more is read or sealed.
    Done,
}

/// An established connection's record layer.
struct Open {
    rx: Direction,
    tx: Direction,
    /// What rustls keeps to derive the next keys of a key update.
    keys: KernelConnection<ServerConnectionData>,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Handshaking(_) => "handshaking",
            State::Open(_) => "open",
            State::Done => "done",
        };
        f.debug_struct("TlsSession").field("state", &state).finish()
    }
}

impl TlsSession {
    /// A connection about to receive its ClientHello. `config` must allow secret extraction
    /// and TLS 1.3 only (see `certs.rs`, which builds it).
    pub(crate) fn new(config: Arc<ServerConfig>) -> Result<TlsSession, TlsError> {
        let connection = UnbufferedServerConnection::new(config).map_err(TlsError::Handshake)?;
        Ok(TlsSession { state: State::Handshaking(Box::new(connection)), held: Vec::new() })
    }

    /// True once the handshake has completed and until the connection fails or closes.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Open(_))
    }

    /// Takes the next step through `input` (the peer's bytes not yet consumed): returns how
    /// many of them are done with and what they held. Bytes for the peer (handshake records,
    /// alerts, key updates) go to `wire` as they are made. After an error, `wire` has had the
    /// alert, if any, and the connection should close.
    pub(crate) fn read(&mut self, input: &mut [u8], wire: &mut impl FnMut(&[u8])) -> Result<(usize, Step), TlsError> {
        if !self.held.is_empty() {
            return Ok((0, Step::Held(std::mem::take(&mut self.held))));
        }
        match &mut self.state {
            State::Handshaking(_) => self.handshake(input, wire),
            State::Open(open) => {
                let result = open.read(input, wire);
                if result.is_err() {
                    self.state = State::Done;
                }
                result
            }
            State::Done => Ok((input.len(), Step::NeedInput)),
        }
    }

    fn handshake(&mut self, input: &mut [u8], wire: &mut impl FnMut(&[u8])) -> Result<(usize, Step), TlsError> {
        let State::Handshaking(connection) = &mut self.state else { return Ok((0, Step::NeedInput)) };
        let mut done = 0;
        loop {
            let UnbufferedStatus { mut discard, state } = connection.process_tls_records(&mut input[done..]);
            let step = match state {
                Err(e) => {
                    send_pending_alert(connection, wire);
                    self.state = State::Done;
                    return Err(TlsError::Handshake(e));
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    let mut buf = vec![0; 4096];
                    let written = loop {
                        match encode.encode(&mut buf) {
                            Ok(written) => break written,
                            Err(EncodeError::InsufficientSize(size)) => buf.resize(size.required_size, 0),
                            Err(EncodeError::AlreadyEncoded) => break 0,
                        }
                    };
                    wire(&buf[..written]);
                    None
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => {
                    // Handed to `wire` as encoded: in the output queue, in order.
                    transmit.done();
                    None
                }
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    // The client's first request, right behind its Finished: kept until the
                    // handshake's completion is reported, so the protocol starts first.
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(TlsError::Handshake)?;
                        discard += record.discard;
                        self.held.extend_from_slice(record.payload);
                    }
                    None
                }
                Ok(ConnectionState::BlockedHandshake) => Some(Step::NeedInput),
                Ok(ConnectionState::WriteTraffic(_)) => Some(Step::Established),
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => Some(Step::PeerClosed),
                // Early data is off (max_early_data_size 0); anything newer is not understood.
                Ok(_) => {
                    self.state = State::Done;
                    return Err(TlsError::Unexpected);
                }
            };
            done += discard;
            match step {
                None => continue,
                Some(Step::Established) => {
                    self.establish()?;
                    return Ok((done, Step::Established));
                }
                Some(step) => return Ok((done, step)),
            }
        }
    }

    /// The handshake is complete: its traffic keys move to smoke's record layer.
    fn establish(&mut self) -> Result<(), TlsError> {
        let State::Handshaking(connection) = std::mem::replace(&mut self.state, State::Done) else {
            return Err(TlsError::Unexpected);
        };
        let (secrets, keys) = connection.dangerous_into_kernel_connection().map_err(TlsError::Handshake)?;
        let direction = |(seq, secrets): (u64, ConnectionTrafficSecrets)| Direction::new(seq, &secrets);
        let (Some(tx), Some(rx)) = (direction(secrets.tx), direction(secrets.rx)) else {
            return Err(TlsError::Unexpected);
        };
        self.state = State::Open(Box::new(Open { rx, tx, keys }));
        Ok(())
    }

    /// Seals `plaintext` into records appended to `out`. Before the handshake completes there
    /// are no keys: `false`, and nothing is appended.
    pub(crate) fn seal(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> bool {
        let State::Open(open) = &mut self.state else { return false };
        if open.tx.seq() >= REKEY_AFTER && !open.rekey(out) {
            self.state = State::Done;
            return false;
        }
        open.tx.seal(plaintext, content::APPLICATION_DATA, out);
        true
    }

    /// Appends a close_notify alert, if the connection is open; nothing is sealed after it.
    pub(crate) fn close_notify(&mut self, out: &mut Vec<u8>) {
        if let State::Open(open) = &mut self.state {
            open.tx.seal(&[1, alert::CLOSE_NOTIFY], content::ALERT, out);
            self.state = State::Done;
        }
    }
}

impl Open {
    fn read(&mut self, input: &mut [u8], wire: &mut impl FnMut(&[u8])) -> Result<(usize, Step), TlsError> {
        let mut done = 0;
        loop {
            let Opened { wire_len, inner, plaintext } = match self.rx.open(&mut input[done..]) {
                Ok(Some(opened)) => opened,
                Ok(None) => return Ok((done, Step::NeedInput)),
                Err(e) => {
                    let description = match e {
                        RecordError::Malformed => alert::DECODE_ERROR,
                        RecordError::BadRecordMac => alert::BAD_RECORD_MAC,
                    };
                    self.send_alert(description, wire);
                    return Err(TlsError::Record(e));
                }
            };
            let body = done + plaintext.start..done + plaintext.end;
            done += wire_len;
            match inner {
                content::APPLICATION_DATA if body.is_empty() => continue,
                content::APPLICATION_DATA => return Ok((done, Step::Data(body))),
                content::ALERT => {
                    return match input[body] {
                        [_, alert::CLOSE_NOTIFY] => Ok((done, Step::PeerClosed)),
                        [_, description] => Err(TlsError::Alert(description)),
                        _ => Err(TlsError::Record(RecordError::Malformed)),
                    };
                }
                content::HANDSHAKE => {
                    if !self.key_update(&input[body], wire) {
                        self.send_alert(alert::UNEXPECTED_MESSAGE, wire);
                        return Err(TlsError::Unexpected);
                    }
                }
                _ => {
                    self.send_alert(alert::UNEXPECTED_MESSAGE, wire);
                    return Err(TlsError::Unexpected);
                }
            }
        }
    }

    /// The peer's key update (the one post-handshake message a server takes): its next records
    /// come under a new key, and when it asks, ours do too.
    fn key_update(&mut self, message: &[u8], wire: &mut impl FnMut(&[u8])) -> bool {
        let &[KEY_UPDATE, 0, 0, 1, requested] = message else { return false };
        let Ok((seq, secrets)) = self.keys.update_rx_secret() else { return false };
        let Some(rx) = Direction::new(seq, &secrets) else { return false };
        self.rx = rx;
        if requested == 1 {
            let mut out = Vec::new();
            if !self.rekey(&mut out) {
                return false;
            }
            wire(&out);
        }
        true
    }

    /// Sends a key update (not asking for the peer's) and moves to the next sending key.
    fn rekey(&mut self, out: &mut Vec<u8>) -> bool {
        self.tx.seal(&[KEY_UPDATE, 0, 0, 1, 0], content::HANDSHAKE, out);
        let Ok((seq, secrets)) = self.keys.update_tx_secret() else { return false };
        let Some(tx) = Direction::new(seq, &secrets) else { return false };
        self.tx = tx;
        true
    }

    fn send_alert(&mut self, description: u8, wire: &mut impl FnMut(&[u8])) {
        let mut out = Vec::new();
        self.tx.seal(&[2, description], content::ALERT, &mut out);
        wire(&out);
    }
}

/// After a handshake error rustls has queued its alert: one more call hands it over.
fn send_pending_alert(connection: &mut UnbufferedServerConnection, wire: &mut impl FnMut(&[u8])) {
    let UnbufferedStatus { state, .. } = connection.process_tls_records(&mut []);
    if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
        let mut buf = [0u8; 64];
        if let Ok(written) = encode.encode(&mut buf) {
            wire(&buf[..written]);
        }
    }
}
