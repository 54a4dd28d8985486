//! Secure game sessions on the runtime: the netcode server machine of one worker's game socket,
//! each player's channels and user session, and the handlers of [`Session`] they call.
//!
//! The runtime hands every datagram of the socket here (a demultiplexed listener, see
//! `rt::demux`): the machine answers handshakes without keeping anything for an unproven
//! source, and a player exists only once it answered its challenge. Messages a datagram carries
//! are copied out of the channels first (the inbox), so a handler holds its player whole and
//! can send while it reads. Each poll (after a batch, every 10 ms) flushes what the players
//! queued, and ten times a second the machine sends keep-alives and times sessions out.

use std::fmt;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use crate::driver::player::{LeaveReason, Player};
use crate::driver::session::Session;
use crate::proto::channel::{Channel, Channels};
use crate::proto::netcode::server::{self as netcode, NetcodeServer, Received, ServerConfig, Transmit};
use crate::proto::netcode::shared::Shared;
use crate::proto::netcode::{KEY_BYTES, Key};
use crate::rt::demux::DemuxIo;

/// How often the machine's keep-alives and timeouts run.
const UPDATE_MILLIS: u64 = 100;

impl Transmit for DemuxIo<'_> {
    fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        DemuxIo::send(self, to, packet);
    }
}

/// A player's state beside the machine's session: the game's value and the channels.
struct Slot<T> {
    user: T,
    channels: Channels,
    kick: bool,
}

/// Messages taken from one packet, before the handlers see them.
#[derive(Debug, Default)]
struct Inbox {
    bytes: Vec<u8>,
    messages: Vec<(Channel, usize)>,
}

/// One worker's game socket.
pub(crate) struct GameEndpoint<T> {
    server: NetcodeServer,
    players: Vec<Option<Slot<T>>>,
    inbox: Inbox,
    next_update: u64,
    /// Handler panics not yet added to the worker's count (each ended its player's session).
    panics: u64,
    /// Channel packets players' clients wrote wrong.
    malformed: u64,
    /// Messages handed to `on_game_message`.
    messages: u64,
}

impl<T: Session> GameEndpoint<T> {
    pub(crate) fn new(config: ServerConfig) -> GameEndpoint<T> {
        GameEndpoint {
            server: NetcodeServer::new(config),
            players: Vec::new(),
            inbox: Inbox::default(),
            next_update: 0,
            panics: 0,
            malformed: 0,
            messages: 0,
        }
    }

    pub(crate) fn players(&self) -> usize {
        self.server.connected()
    }

    /// One datagram: a handshake step, or a player's packet of messages.
    pub(crate) fn datagram(&mut self, io: &mut DemuxIo<'_>, from: SocketAddr, packet: &mut [u8]) {
        match self.server.receive(io.now, io.unix_seconds, from, packet, io) {
            Received::Nothing => {}
            Received::Joined { slot } => self.join(slot, io),
            Received::Payload { slot, payload } => {
                let Some(Some(player)) = self.players.get_mut(slot as usize) else { return };
                let inbox = &mut self.inbox;
                let malformed = player.channels.malformed;
                player.channels.receive(io.now, payload, |channel, message| {
                    inbox.bytes.extend_from_slice(message);
                    inbox.messages.push((channel, inbox.bytes.len()));
                });
                self.malformed += player.channels.malformed - malformed;
                self.deliver_inbox(slot);
                self.settle(slot, io);
            }
            Received::Left { slot, session } => self.leave(slot, &session, LeaveReason::Disconnected),
        }
    }

    /// A player completed the handshake: its session is built (`new_player`) and greeted.
    fn join(&mut self, slot: u32, io: &mut DemuxIo<'_>) {
        let session = self.server.session(slot).expect("joined just now");
        let (mut channels, mut kick) = (Channels::default(), false);
        let mut player = Player { session, channels: &mut channels, kick: &mut kick };
        let user = match catch_unwind(AssertUnwindSafe(|| T::new_player(&mut player))) {
            Ok(Some(user)) => user,
            // Refused, or its constructor panicked: the client is told at once.
            outcome => {
                self.panics += u64::from(outcome.is_err());
                self.server.kick(io.now, slot, io);
                return;
            }
        };
        if self.players.len() <= slot as usize {
            self.players.resize_with(slot as usize + 1, || None);
        }
        self.players[slot as usize] = Some(Slot { user, channels, kick });
        self.call(slot, |user, player| user.on_join(player));
        self.settle(slot, io);
    }

    /// Hands the inbox's messages to the player's `on_game_message`, in the order they came.
    fn deliver_inbox(&mut self, slot: u32) {
        let mut inbox = std::mem::take(&mut self.inbox);
        let mut start = 0;
        for &(channel, end) in &inbox.messages {
            let message = &inbox.bytes[start..end];
            start = end;
            // A player kicked by one message's handler hears nothing after it.
            if matches!(self.players.get(slot as usize), Some(Some(state)) if state.kick) {
                break;
            }
            self.messages += 1;
            self.call(slot, |user, player| user.on_game_message(player, channel, message));
        }
        inbox.bytes.clear();
        inbox.messages.clear();
        self.inbox = inbox;
    }

    /// Calls a handler with the player in `slot`; a panic ends the player's session.
    fn call(&mut self, slot: u32, handler: impl FnOnce(&mut T, &mut Player<'_>)) {
        let Some(session) = self.server.session(slot) else { return };
        let Some(Some(state)) = self.players.get_mut(slot as usize) else { return };
        let mut player = Player { session, channels: &mut state.channels, kick: &mut state.kick };
        let user = &mut state.user;
        if catch_unwind(AssertUnwindSafe(|| handler(user, &mut player))).is_err() {
            self.panics += 1;
            log::error!("a game handler panicked for client {}; kicking it", session.client_id);
            state.kick = true;
        }
    }

    /// After a player's calls: its kick, if one was asked for.
    fn settle(&mut self, slot: u32, io: &mut DemuxIo<'_>) {
        let kicked = matches!(self.players.get(slot as usize), Some(Some(state)) if state.kick);
        if kicked && let Some(session) = self.server.kick(io.now, slot, io) {
            self.leave(slot, &session, LeaveReason::Kicked);
        }
    }

    /// A session ended: `on_leave`, then the player is gone (what it sends there is dropped).
    fn leave(&mut self, slot: u32, session: &netcode::Session, reason: LeaveReason) {
        let Some(Some(mut state)) = self.players.get_mut(slot as usize).map(Option::take) else { return };
        let mut player = Player { session, channels: &mut state.channels, kick: &mut state.kick };
        *player.kick = true;
        if catch_unwind(AssertUnwindSafe(|| state.user.on_leave(&mut player, reason))).is_err() {
            self.panics += 1;
        }
    }

    /// Sends what the players queued (and what their channels resend or owe in acks); ten times
    /// a second, keep-alives and timeouts.
    pub(crate) fn poll(&mut self, io: &mut DemuxIo<'_>) {
        for slot in 0..self.players.len() as u32 {
            let Some(Some(state)) = self.players.get_mut(slot as usize) else { continue };
            if !state.channels.wants_flush(io.now) {
                continue;
            }
            let server = &mut self.server;
            state.channels.flush(io.now, |packet| {
                server.send_payload(io.now, slot, packet, io);
            });
        }
        if io.now >= self.next_update {
            self.next_update = io.now + UPDATE_MILLIS;
            let mut timed_out = Vec::new();
            self.server.update(io.now, io, |slot, session| timed_out.push((slot, session)));
            for (slot, session) in timed_out {
                self.leave(slot, &session, LeaveReason::TimedOut);
            }
        }
        self.publish_counters(io);
    }

    /// Puts the machine's counts in the worker's counters: each worker's are its own, and the
    /// server's are their sum.
    fn publish_counters(&mut self, io: &DemuxIo<'_>) {
        let (machine, counters) = (self.server.counters(), io.counters);
        let malformed = machine.malformed + self.malformed;
        for (counter, value) in [
            (&counters.players, self.server.connected() as u64),
            (&counters.game_requests_ignored, machine.requests_ignored),
            (&counters.game_denied, machine.denied),
            (&counters.game_forged, machine.forged),
            (&counters.game_replayed, machine.replayed),
            (&counters.game_malformed, malformed),
            (&counters.game_unknown_source, machine.unknown_source),
            (&counters.game_messages, self.messages),
        ] {
            counter.store(value, std::sync::atomic::Ordering::Relaxed);
        }
        crate::stats::bump(&counters.panics, std::mem::take(&mut self.panics));
    }

    /// Calls `visit` with every player, then settles their kicks and sends what they queued.
    pub(crate) fn for_each_player(&mut self, io: &mut DemuxIo<'_>, mut visit: impl FnMut(&mut T, &mut Player<'_>)) {
        for slot in 0..self.players.len() as u32 {
            self.call(slot, &mut visit);
            self.settle(slot, io);
        }
        self.poll(io);
    }

    /// The server is stopping: every player is told and leaves.
    pub(crate) fn shutdown(&mut self, io: &mut DemuxIo<'_>) {
        for slot in 0..self.players.len() as u32 {
            if let Some(session) = self.server.kick(io.now, slot, io) {
                self.leave(slot, &session, LeaveReason::Shutdown);
            }
        }
    }
}

/// The game listeners' settings, from the face's `Config`: what every worker's machine is
/// configured from.
/// Players connected at once across a server's workers, by default: renetcode's limit; the
/// netcode reference allows 256.
pub const DEFAULT_MAX_CLIENTS: u32 = 1024;

#[derive(Clone, Default)]
pub(crate) struct GameSettings {
    pub(crate) protocol_id: u64,
    pub(crate) key: Option<Key>,
    pub(crate) public: Vec<SocketAddr>,
    pub(crate) max_clients: Option<u32>,
    /// Shared by every worker's machine once the server starts.
    shared: Option<Arc<Shared>>,
}

impl fmt::Debug for GameSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("GameSettings")
            .field("protocol_id", &self.protocol_id)
            .field("key", &self.key.map(|_| "set"))
            .field("public", &self.public)
            .field("max_clients", &self.max_clients)
            .finish()
    }
}

impl GameSettings {
    /// Why a game listener cannot start, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        match self.key {
            Some(_) => Ok(()),
            None => Err("a game listener needs the key its players' tokens are sealed with: set game_key, or \
                         SMOKE_GAME_KEY to 64 hex digits"
                .to_owned()),
        }
    }

    /// The machine's configuration for a socket bound at `local`, with a fresh challenge key.
    pub(crate) fn server_config(&self, local: Option<SocketAddr>) -> std::io::Result<ServerConfig> {
        let mut challenge_key = [0u8; KEY_BYTES];
        crate::sys::fill_random(&mut challenge_key)?;
        let public_addresses = if self.public.is_empty() { local.into_iter().collect() } else { self.public.clone() };
        Ok(ServerConfig {
            protocol_id: self.protocol_id,
            private_key: self.key.ok_or_else(|| std::io::Error::other("no game key"))?,
            public_addresses,
            shared: self.shared(),
            challenge_key,
        })
    }

    /// What every worker's machine shares (seats, client ids, tokens seen), made on first use.
    fn shared(&self) -> Arc<Shared> {
        self.shared.clone().unwrap_or_else(|| Arc::new(Shared::new(self.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS))))
    }

    /// Fixes what the workers share before the settings are handed to them.
    pub(crate) fn with_shared(mut self) -> GameSettings {
        self.shared = Some(self.shared());
        self
    }
}
