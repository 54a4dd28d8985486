//! The server's machine: it is handed each datagram with its source address and the time, and
//! hands back what the application should see (a join, a payload, a leave); what it answers
//! goes to a [`Transmit`]. It owns no socket and reads no clock.
//!
//! Spoofed traffic costs it little: a request is checked in the standard's order (size, version,
//! protocol, expiry, then the one decryption) and nothing is kept for it but the used token's tag
//! and an encryption mapping, both bounded; the answer, a challenge, is smaller than the request.
//! A session is made only for a response that carries a challenge this server sealed.

use super::packet::{self, CHALLENGE_BODY_BYTES, Header, Kind, REQUEST_BYTES};
use super::replay::ReplayWindow;
use super::shared::{NoSeat, Shared, Tag};
use super::token::{self, CHALLENGE_TOKEN_BYTES, PRIVATE_TOKEN_BYTES, PrivateToken};
use super::{Key, MAC_BYTES, MAX_PACKET_BYTES, USER_DATA_BYTES, VERSION_INFO};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Where the machine's answers go: the driver queues them on its UDP socket.
pub(crate) trait Transmit {
    fn send(&mut self, to: SocketAddr, packet: &[u8]);
}

/// How often a session hears from the server when the game sends it nothing: the standard's
/// "like 10 Hz".
const KEEP_ALIVE_MILLIS: u64 = 100;
/// Redundant disconnect packets sent when the server ends a session, as the reference sends.
const DISCONNECT_PACKETS: usize = 10;
/// Sequence numbers reserved for each handshake made from one token: a token used again (from the
/// same address, after its first session ended) seals under the same key, and must not reuse a
/// nonce. 2^40 packets last a session 580 years at 60 Hz.
const SEQUENCES_PER_MAPPING: u64 = 1 << 40;

/// What the server needs to know.
#[derive(Clone, Debug)]
pub(crate) struct ServerConfig {
    pub(crate) protocol_id: u64,
    /// The key shared with the backend that issues tokens.
    pub(crate) private_key: Key,
    /// The addresses clients are told to connect to; a token must name one of them. An
    /// unspecified IP here (`0.0.0.0:7000`) stands for any IP with its port.
    pub(crate) public_addresses: Vec<SocketAddr>,
    /// What every worker's machine shares (each has its own socket): the seats (a full server
    /// answers "denied"), the client ids connected, the tokens seen.
    pub(crate) shared: Arc<Shared>,
    /// The server's own key for challenge tokens, random at start.
    pub(crate) challenge_key: Key,
}

/// What one datagram meant to the application.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received<'a> {
    /// Nothing for the application: a handshake step, a keep-alive, or a packet dropped (and
    /// counted).
    Nothing,
    /// A client completed the handshake and holds `slot`.
    Joined { slot: u32 },
    /// A session's payload.
    Payload { slot: u32, payload: &'a [u8] },
    /// The client said goodbye; the session is gone.
    Left { slot: u32, session: Box<Session> },
}

/// Packets dropped and why, for the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    /// Connection requests ignored: wrong size, version, protocol, expired, a token that does not
    /// open or names another server, or one already used from another address.
    pub(crate) requests_ignored: u64,
    /// Requests and responses answered "denied" because every slot was taken.
    pub(crate) denied: u64,
    /// Encrypted packets that failed to open: forged, altered, or sealed with another key.
    pub(crate) forged: u64,
    /// Packets whose sequence was already received or is too old to tell.
    pub(crate) replayed: u64,
    /// Packets of a kind or size that cannot be valid where they arrived.
    pub(crate) malformed: u64,
    /// Encrypted packets from an address with neither a session nor a pending handshake.
    pub(crate) unknown_source: u64,
    pub(crate) joined: u64,
    pub(crate) timed_out: u64,
}

/// One connected client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Session {
    pub(crate) client_id: u64,
    pub(crate) address: SocketAddr,
    pub(crate) user_data: [u8; USER_DATA_BYTES],
    send_key: Key,
    receive_key: Key,
    send_sequence: u64,
    replay: ReplayWindow,
    /// Milliseconds of silence before it times out; `None` for a token that disables it.
    timeout_millis: Option<u64>,
    last_received: u64,
    last_sent: u64,
    /// Until the client is heard from in the session, every payload is preceded by a keep-alive,
    /// which is what tells it its index.
    confirmed: bool,
}

/// A handshake in progress: the keys from a valid request, kept for its address until the
/// response or the timeout.
#[derive(Debug)]
struct Mapping {
    send_key: Key,
    receive_key: Key,
    send_sequence: u64,
    timeout_millis: Option<u64>,
    expires: u64,
    /// The token's tag, which the session, once made, marks used up.
    tag: Tag,
}

#[derive(Debug)]
pub(crate) struct NetcodeServer {
    config: ServerConfig,
    challenge_sequence: u64,
    slots: Vec<Option<Box<Session>>>,
    free_slots: Vec<u32>,
    by_address: HashMap<SocketAddr, u32>,
    pending: HashMap<SocketAddr, Mapping>,
    scratch: Box<[u8; MAX_PACKET_BYTES]>,
    counters: Counters,
}

impl NetcodeServer {
    pub(crate) fn new(config: ServerConfig) -> NetcodeServer {
        NetcodeServer {
            config,
            challenge_sequence: 0,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_address: HashMap::new(),
            pending: HashMap::new(),
            scratch: Box::new([0; MAX_PACKET_BYTES]),
            counters: Counters::default(),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        self.counters
    }

    pub(crate) fn connected(&self) -> usize {
        self.by_address.len()
    }

    pub(crate) fn session(&self, slot: u32) -> Option<&Session> {
        self.slots.get(slot as usize)?.as_deref()
    }

    /// Handles one datagram from `from`, decrypting it in place.
    pub(crate) fn receive<'a>(
        &mut self,
        now: u64,
        unix_seconds: u64,
        from: SocketAddr,
        packet: &'a mut [u8],
        transmit: &mut impl Transmit,
    ) -> Received<'a> {
        if packet.first() == Some(&0) {
            self.on_request(now, unix_seconds, from, packet, transmit);
            return Received::Nothing;
        }
        let Some(header) = packet::read_header(packet) else {
            self.counters.malformed += 1;
            return Received::Nothing;
        };
        if let Some(&slot) = self.by_address.get(&from) {
            return self.on_session_packet(now, slot, header, packet);
        }
        if header.kind == Kind::Response && self.pending.contains_key(&from) {
            return self.on_response(now, from, header, packet, transmit);
        }
        self.counters.unknown_source += 1;
        Received::Nothing
    }

    /// A connection request, checked in the standard's order, cheapest first.
    fn on_request(
        &mut self,
        now: u64,
        unix_seconds: u64,
        from: SocketAddr,
        packet: &mut [u8],
        transmit: &mut impl Transmit,
    ) {
        let Some(token) = self.open_request(unix_seconds, packet) else {
            self.counters.requests_ignored += 1;
            return;
        };
        let tag: [u8; MAC_BYTES] = packet[REQUEST_BYTES - MAC_BYTES..].try_into().expect("request size checked");
        let expire_timestamp = u64::from_le_bytes(packet[22..30].try_into().expect("request size checked"));
        // A request resent before the first response arrived continues its handshake; one with
        // another token from the same address starts a new one.
        let resent = self.pending.get(&from).is_some_and(|mapping| mapping.receive_key == token.client_to_server_key);
        // Bounded by what can be connecting at once.
        let tokens_limit = self.handshake_limit().max(1024);
        let shared = &self.config.shared;
        if self.by_address.contains_key(&from)
            || shared.is_connected(token.client_id)
            || !shared.use_token(tag, from, expire_timestamp, unix_seconds, tokens_limit)
            || (!resent && self.pending.len() >= self.handshake_limit())
        {
            self.counters.requests_ignored += 1;
            return;
        }
        let full = self.config.shared.is_full();
        let sequence = match self.pending.get_mut(&from) {
            Some(mapping) if resent => {
                mapping.send_sequence += 1;
                mapping.send_sequence - 1
            }
            _ => self.config.shared.reserve_sequences(&tag, if full { 1 } else { SEQUENCES_PER_MAPPING }),
        };
        let protocol_id = self.config.protocol_id;
        if full {
            self.counters.denied += 1;
            let len = packet::seal(
                &mut self.scratch,
                Kind::Denied,
                sequence,
                protocol_id,
                &token.server_to_client_key,
                |_| 0,
            );
            transmit.send(from, &self.scratch[..len]);
            return;
        }
        let timeout_millis = timeout_millis(token.timeout_seconds);
        if !resent {
            let mapping = Mapping {
                send_key: token.server_to_client_key,
                receive_key: token.client_to_server_key,
                send_sequence: sequence + 1,
                timeout_millis,
                expires: 0,
                tag,
            };
            self.pending.insert(from, mapping);
        }
        let mapping = self.pending.get_mut(&from).expect("inserted or found above");
        mapping.expires = now.saturating_add(timeout_millis.unwrap_or(u64::MAX / 2));
        let challenge_sequence = self.challenge_sequence;
        self.challenge_sequence += 1;
        let challenge =
            token::seal_challenge(token.client_id, &token.user_data, challenge_sequence, &self.config.challenge_key);
        let len = packet::seal(&mut self.scratch, Kind::Challenge, sequence, protocol_id, &mapping.send_key, |body| {
            body[..8].copy_from_slice(&challenge_sequence.to_le_bytes());
            body[8..CHALLENGE_BODY_BYTES].copy_from_slice(&challenge);
            CHALLENGE_BODY_BYTES
        });
        transmit.send(from, &self.scratch[..len]);
    }

    /// Handshakes in progress at once: four per seat, as the reference allows, and at least 256.
    fn handshake_limit(&self) -> usize {
        (self.config.shared.max() as usize).saturating_mul(4).max(256)
    }

    /// The request's checks up to and including the token's decryption (in place) and reading.
    fn open_request(&self, unix_seconds: u64, packet: &mut [u8]) -> Option<PrivateToken> {
        if packet.len() != REQUEST_BYTES || &packet[1..14] != VERSION_INFO {
            return None;
        }
        let protocol_id = u64::from_le_bytes(packet[14..22].try_into().ok()?);
        let expire_timestamp = u64::from_le_bytes(packet[22..30].try_into().ok()?);
        if protocol_id != self.config.protocol_id || expire_timestamp <= unix_seconds {
            return None;
        }
        let nonce: [u8; 24] = packet[30..54].try_into().ok()?;
        let sealed: &mut [u8; PRIVATE_TOKEN_BYTES] = (&mut packet[54..]).try_into().ok()?;
        let addresses = &self.config.public_addresses;
        token::open_private(sealed, protocol_id, expire_timestamp, &nonce, &self.config.private_key, |named| {
            addresses.iter().any(|ours| *ours == named || (ours.ip().is_unspecified() && ours.port() == named.port()))
        })
    }

    /// A connection response from an address with a mapping: a session, if it carries a challenge
    /// this server sealed and a slot is free.
    fn on_response<'a>(
        &mut self,
        now: u64,
        from: SocketAddr,
        header: Header,
        packet: &'a mut [u8],
        transmit: &mut impl Transmit,
    ) -> Received<'a> {
        let mapping = self.pending.get(&from).expect("caller checked");
        let Some(body) = packet::open(packet, header, self.config.protocol_id, &mapping.receive_key) else {
            self.counters.forged += 1;
            return Received::Nothing;
        };
        if !Kind::Response.fits_body(body.len()) {
            self.counters.malformed += 1;
            return Received::Nothing;
        }
        let challenge_sequence = u64::from_le_bytes(body[..8].try_into().expect("size checked"));
        let mut challenge: [u8; CHALLENGE_TOKEN_BYTES] = body[8..].try_into().expect("size checked");
        let Some((client_id, user_data)) =
            token::open_challenge(&mut challenge, challenge_sequence, &self.config.challenge_key)
        else {
            self.counters.forged += 1;
            return Received::Nothing;
        };
        let tag = self.pending.get(&from).expect("looked up above").tag;
        match self.config.shared.take_seat(client_id, &tag) {
            Ok(()) => {}
            Err(NoSeat::AlreadyConnected) => {
                self.counters.requests_ignored += 1;
                return Received::Nothing;
            }
            Err(NoSeat::Full) => return self.deny(from, transmit),
        }
        let mapping = self.pending.remove(&from).expect("looked up above");
        let session = Box::new(Session {
            client_id,
            address: from,
            user_data,
            send_key: mapping.send_key,
            receive_key: mapping.receive_key,
            send_sequence: mapping.send_sequence,
            replay: ReplayWindow::default(),
            timeout_millis: mapping.timeout_millis,
            last_received: now,
            last_sent: now,
            confirmed: false,
        });
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(session);
                slot
            }
            None => {
                self.slots.push(Some(session));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_address.insert(from, slot);
        self.counters.joined += 1;
        self.send_keep_alive(now, slot, transmit);
        Received::Joined { slot }
    }

    /// Answers the handshake of `from` with "denied", under its mapping's keys.
    fn deny<'a>(&mut self, from: SocketAddr, transmit: &mut impl Transmit) -> Received<'a> {
        self.counters.denied += 1;
        let mapping = self.pending.get_mut(&from).expect("the caller found it");
        let sequence = mapping.send_sequence;
        mapping.send_sequence += 1;
        let key = mapping.send_key;
        let len = packet::seal(&mut self.scratch, Kind::Denied, sequence, self.config.protocol_id, &key, |_| 0);
        transmit.send(from, &self.scratch[..len]);
        Received::Nothing
    }

    /// A packet from a connected client: replay check, decryption, then by kind.
    fn on_session_packet<'a>(&mut self, now: u64, slot: u32, header: Header, packet: &'a mut [u8]) -> Received<'a> {
        let protocol_id = self.config.protocol_id;
        let session = self.slots[slot as usize].as_deref_mut().expect("mapped slots are full");
        if !header.kind.is_replay_protected() {
            // A request or response resent before the client saw its keep-alive: harmless.
            return Received::Nothing;
        }
        if session.replay.already_received(header.sequence) {
            self.counters.replayed += 1;
            return Received::Nothing;
        }
        let Some(body) = packet::open(packet, header, protocol_id, &session.receive_key) else {
            self.counters.forged += 1;
            return Received::Nothing;
        };
        session.replay.accept(header.sequence);
        if !header.kind.fits_body(body.len()) {
            self.counters.malformed += 1;
            return Received::Nothing;
        }
        session.last_received = now;
        match header.kind {
            Kind::Payload => {
                session.confirmed = true;
                Received::Payload { slot, payload: body }
            }
            Kind::Disconnect => Received::Left { slot, session: self.remove(slot) },
            _ => {
                session.confirmed = true;
                Received::Nothing
            }
        }
    }

    /// Seals `payload` (1 to 1,200 bytes) for the session in `slot` and hands it to `transmit`;
    /// false for an empty slot or a payload out of range.
    pub(crate) fn send_payload(&mut self, now: u64, slot: u32, payload: &[u8], transmit: &mut impl Transmit) -> bool {
        if !Kind::Payload.fits_body(payload.len()) {
            return false;
        }
        let Some(session) = self.slots.get(slot as usize).and_then(|slot| slot.as_deref()) else {
            return false;
        };
        if !session.confirmed {
            self.send_keep_alive(now, slot, transmit);
        }
        self.send_sealed(now, slot, Kind::Payload, transmit, |body| {
            body[..payload.len()].copy_from_slice(payload);
            payload.len()
        });
        true
    }

    /// Keep-alives to sessions the game has not sent to lately, timeouts, and expired handshakes.
    /// Calls `left` for each session that timed out, after it is gone. Run it every 100 ms or so.
    pub(crate) fn update(&mut self, now: u64, transmit: &mut impl Transmit, mut left: impl FnMut(u32, Box<Session>)) {
        self.pending.retain(|_, mapping| mapping.expires > now);
        for slot in 0..self.slots.len() as u32 {
            let Some(session) = self.slots[slot as usize].as_deref() else { continue };
            let silent_for = now.saturating_sub(session.last_received);
            if session.timeout_millis.is_some_and(|timeout| silent_for > timeout) {
                self.counters.timed_out += 1;
                left(slot, self.remove(slot));
            } else if now.saturating_sub(session.last_sent) >= KEEP_ALIVE_MILLIS {
                self.send_keep_alive(now, slot, transmit);
            }
        }
    }

    /// Ends the session in `slot`, telling the client with redundant disconnect packets.
    pub(crate) fn kick(&mut self, now: u64, slot: u32, transmit: &mut impl Transmit) -> Option<Box<Session>> {
        self.session(slot)?;
        for _ in 0..DISCONNECT_PACKETS {
            self.send_sealed(now, slot, Kind::Disconnect, transmit, |_| 0);
        }
        Some(self.remove(slot))
    }

    fn send_keep_alive(&mut self, now: u64, slot: u32, transmit: &mut impl Transmit) {
        let max_clients = self.config.shared.max();
        self.send_sealed(now, slot, Kind::KeepAlive, transmit, |body| {
            body[..4].copy_from_slice(&slot.to_le_bytes());
            body[4..8].copy_from_slice(&max_clients.to_le_bytes());
            8
        });
    }

    fn send_sealed(
        &mut self,
        now: u64,
        slot: u32,
        kind: Kind,
        transmit: &mut impl Transmit,
        fill: impl FnOnce(&mut [u8]) -> usize,
    ) {
        let session = self.slots[slot as usize].as_deref_mut().expect("caller checked the slot");
        let len = packet::seal(
            &mut self.scratch,
            kind,
            session.send_sequence,
            self.config.protocol_id,
            &session.send_key,
            fill,
        );
        session.send_sequence += 1;
        session.last_sent = now;
        transmit.send(session.address, &self.scratch[..len]);
    }

    fn remove(&mut self, slot: u32) -> Box<Session> {
        let session = self.slots[slot as usize].take().expect("caller checked the slot");
        self.by_address.remove(&session.address);
        self.free_slots.push(slot);
        self.config.shared.release(session.client_id);
        session
    }
}

/// A token's timeout in milliseconds; a negative one disables it (the standard: "dev only").
fn timeout_millis(seconds: i32) -> Option<u64> {
    u64::try_from(seconds).ok().map(|seconds| seconds * 1000)
}
