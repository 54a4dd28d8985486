//! The datagram path: a worker's UDP sockets (or the packet ring in front of them), its peers
//! (one session per remote address, in slots so timers can name them by token), batches of
//! `recvmmsg` handed to the sessions, and their replies leaving in `sendmmsg` batches.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{EventLoop, Service, guarded};
use crate::rt::conn::CloseReason;
use crate::rt::core::Core;
use crate::rt::peer::{Peer, PeerState};
use crate::rt::time::Stamp;
use crate::rt::token::{ConnId, Kind, Token};
use crate::rt::wheel::{EntryId, Timer};
use crate::stats::{bump, lower};
use crate::sys::{PacketRing, RecvBatch, SendQueue, UdpSocket};

/// `recvmmsg` calls per UDP socket per wake-up before the rest of the worker gets a turn.
const UDP_BATCHES_PER_WAKE: usize = 16;
/// Datagram slots per `recvmmsg` (fewer when `max_datagram` is large: at most 1 MiB of slots).
const UDP_SLOTS: usize = 64;

/// A worker's UDP side: its sockets, its peers, and the packet ring if it has one.
pub(super) struct Datagrams<P, D> {
    pub(super) endpoints: Vec<Endpoint<D>>,
    /// Taken while a batch is handled (its datagrams borrow it).
    batch: Option<RecvBatch>,
    pub(super) peers: Peers<P>,
    /// Peers to close after the calls that asked for it (or panicked).
    pub(super) closing: Vec<(Token, CloseReason)>,
    /// The packet ring feeding these sessions instead of the sockets (`pfring`).
    pub(super) ring: Option<PacketRing>,
    /// The ring's interface's addresses: where a datagram for a socket bound to the
    /// unspecified address may be going.
    ring_addresses: Vec<IpAddr>,
}

pub(super) struct Endpoint<D> {
    pub(super) socket: UdpSocket,
    pub(super) queue: SendQueue,
    /// The machine that takes every datagram of this socket, for a demultiplexed listener;
    /// `None` for a listener of peers.
    pub(super) demux: Option<D>,
    /// The wheel's entry that polls `demux` every `DEMUX_POLL_MS`.
    pub(super) demux_poll: Option<EntryId>,
    /// The socket's address: where a datagram from the packet ring must be going to be its
    /// (`None` if the socket could not say, and then none is).
    local: Option<SocketAddr>,
}

impl<D> Endpoint<D> {
    /// True when a datagram to `to` would have reached this socket, given the addresses of the
    /// ring's interface: its port, and its address, or for the unspecified address one of the
    /// interface's (of IPv4 only for `0.0.0.0`; `::` takes both, as a dual-stack socket does).
    fn receives(&self, to: SocketAddr, interface: &[IpAddr]) -> bool {
        let Some(local) = self.local else { return false };
        let address = match (local.ip(), to.ip()) {
            (IpAddr::V4(any), IpAddr::V4(_)) if any.is_unspecified() => interface.contains(&to.ip()),
            (IpAddr::V6(any), _) if any.is_unspecified() => interface.contains(&to.ip()),
            (here, there) => here == there,
        };
        to.port() == local.port() && address
    }
}

/// A worker's peers, in slots: a peer's token is its slot and generation, and its address finds
/// the slot.
pub(super) struct Peers<P> {
    slots: Vec<Option<PeerEntry<P>>>,
    free: Vec<usize>,
    by_addr: HashMap<SocketAddr, usize>,
}

pub(super) struct PeerEntry<P> {
    pub(super) session: P,
    pub(super) addr: SocketAddr,
    pub(super) id: ConnId,
    generation: u32,
    pub(super) endpoint: usize,
    last_active: Stamp,
    /// It has sent more than its first datagram (see `udp_new_peer_timeout`).
    seen_twice: bool,
    timer: Timer,
    /// The runtime's own timer: when to look at whether the peer has been silent too long.
    /// It is not moved by every datagram; when it fires early it is set again for the rest.
    expiry: Option<EntryId>,
}

impl<P> Peers<P> {
    pub(super) fn len(&self) -> usize {
        self.by_addr.len()
    }

    fn insert(&mut self, entry: PeerEntry<P>) -> (usize, &mut PeerEntry<P>) {
        let addr = entry.addr;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.by_addr.insert(addr, slot);
        (slot, self.slots[slot].as_mut().expect("just stored"))
    }

    /// The live peer `token` names.
    fn get_mut(&mut self, token: Token) -> Option<&mut PeerEntry<P>> {
        self.slots.get_mut(token.index())?.as_mut().filter(|e| e.generation == token.generation())
    }

    fn remove(&mut self, token: Token) -> Option<PeerEntry<P>> {
        self.get_mut(token)?;
        let entry = self.slots[token.index()].take()?;
        self.by_addr.remove(&entry.addr);
        self.free.push(token.index());
        Some(entry)
    }

    /// Every live peer with its token.
    pub(super) fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut PeerEntry<P>)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(slot, entry)| entry.as_mut().map(|e| (Token::new(Kind::Peer, slot, e.generation), e)))
    }
}

impl<P> PeerEntry<P> {
    fn token(&self, slot: usize) -> Token {
        Token::new(Kind::Peer, slot, self.generation)
    }
}

impl<P, D> Datagrams<P, D> {
    pub(super) fn new<S: Service<Peer = P, Demux = D>>(
        sockets: Vec<UdpSocket>,
        listeners: &[usize],
        mut ring: Option<PacketRing>,
        core: &Core,
        service: &S,
    ) -> Datagrams<P, D> {
        let max_datagram = core.limits.max_datagram;
        let batch = (!sockets.is_empty()).then(|| {
            let slots = ((1 << 20) / max_datagram).clamp(1, UDP_SLOTS);
            RecvBatch::new(slots, max_datagram)
        });
        let endpoints: Vec<Endpoint<D>> = sockets
            .into_iter()
            .enumerate()
            .map(|(i, socket)| {
                let local = socket.local_addr().ok();
                let demux = listeners.get(i).and_then(|&listener| service.open_demux(listener, local));
                Endpoint { socket, queue: SendQueue::default(), local, demux, demux_poll: None }
            })
            .collect();
        let ring_addresses = ring.as_mut().map(|ring| std::mem::take(&mut ring.addresses)).unwrap_or_default();
        Datagrams {
            endpoints,
            batch,
            peers: Peers { slots: Vec::new(), free: Vec::new(), by_addr: HashMap::new() },
            closing: Vec::new(),
            ring,
            ring_addresses,
        }
    }
}

/// How long a peer may stay silent: `udp_idle_timeout`, or `udp_new_peer_timeout` (when
/// shorter) before it has sent a second datagram; `None` when peers never expire.
fn peer_timeout(core: &Core, seen_twice: bool) -> Option<Duration> {
    let idle = core.limits.udp_idle_timeout?;
    Some(if seen_twice { idle } else { idle.min(core.limits.udp_new_peer_timeout) })
}

/// Applies what a peer's handler asked for: a close (after the call), a timer.
pub(super) fn apply_peer_requests<P>(
    core: &mut Core,
    closing: &mut Vec<(Token, CloseReason)>,
    entry: &mut PeerEntry<P>,
    token: Token,
    state: PeerState,
) {
    entry.timer.request = state.timer;
    core.timers.apply(&mut entry.timer, token, &core.clock);
    if state.close {
        closing.push((token, CloseReason::Closed));
    }
}

/// Calls one handler of a peer's session with its `Peer` handle (starting from `state`); what
/// the handler asked for comes back, or `None` when it panicked.
fn call_peer<P, D>(
    core: &Core,
    endpoints: &mut [Endpoint<D>],
    entry: &mut PeerEntry<P>,
    mut state: PeerState,
    what: &str,
    handler: impl FnOnce(&mut P, &mut Peer<'_>),
) -> Option<PeerState> {
    let queue = &mut endpoints[entry.endpoint].queue;
    let mut peer = Peer { addr: entry.addr, id: entry.id, queue, state: &mut state, workers: &core.workers };
    let session = &mut entry.session;
    guarded(core.counters(), entry.id, what, || handler(session, &mut peer))?;
    Some(state)
}

impl<S: Service> EventLoop<S> {
    /// Handles up to `UDP_BATCHES_PER_WAKE` batches of datagrams from one UDP socket.
    pub(super) fn read_udp(&mut self, endpoint: usize) {
        if endpoint >= self.datagrams.endpoints.len() {
            return;
        }
        let Some(mut batch) = self.datagrams.batch.take() else { return };
        let mut drained = false;
        for _ in 0..UDP_BATCHES_PER_WAKE {
            let received = match self.datagrams.endpoints[endpoint].socket.recv_batch(&mut batch) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors queued on the socket (a peer's port unreachable) surface here;
                    // the socket itself is fine.
                    log::debug!("worker {}: udp receive: {e}", self.core.index);
                    continue;
                }
            };
            let demultiplexed = self.datagrams.endpoints[endpoint].demux.is_some();
            for i in 0..received {
                let Some((addr, packet, truncated)) = batch.get_mut(i) else { continue };
                if truncated {
                    bump(&self.core.counters().datagrams_truncated, 1);
                    continue;
                }
                if demultiplexed {
                    self.demux_datagram(endpoint, addr, packet);
                } else {
                    self.datagram(endpoint, addr, packet);
                }
            }
            if demultiplexed {
                self.poll_demux(endpoint);
            }
            // What this batch produced leaves now, in one sendmmsg: the next batch's wait
            // would only add to these replies' latency.
            self.flush_udp();
            if received < batch.capacity() {
                drained = true;
                break;
            }
        }
        self.datagrams.batch = Some(batch);
        if !drained {
            self.core.retry.push(Token::of(Kind::Udp, endpoint));
        }
        self.settle_peers();
    }

    /// Hands the packet ring's filled blocks to the sessions, as datagrams to the UDP endpoint
    /// they were going to. What a socket would not have received is dropped and counted: a
    /// frame for another host, another address or port, or with a bad checksum.
    pub(super) fn read_ring(&mut self) {
        let Some(mut ring) = self.datagrams.ring.take() else { return };
        let addresses = std::mem::take(&mut self.datagrams.ring_addresses);
        let mut captured = 0;
        let service = &*self.service.clone();
        ring.drain(|frame| {
            let counters = self.core.counters();
            if frame.cut {
                // Longer than the filter's snap length: a datagram above max_datagram.
                bump(&counters.datagrams_truncated, 1);
                return;
            }
            let datagram = match frame.to_this_host {
                true => service.ring_datagram(frame.bytes, !frame.checksum_trusted),
                false => None,
            };
            let endpoints = &self.datagrams.endpoints;
            let endpoint = datagram.and_then(|d| endpoints.iter().position(|e| e.receives(d.to, &addresses)));
            let (Some(datagram), Some(endpoint)) = (datagram, endpoint) else {
                bump(&counters.ring_dropped, 1);
                return;
            };
            if datagram.payload.len() > self.core.limits.max_datagram {
                bump(&counters.datagrams_truncated, 1);
                return;
            }
            captured += 1;
            if self.datagrams.endpoints[endpoint].demux.is_some() {
                // The ring's frames are read-only: the machine gets a copy it may decrypt.
                let mut copy = [0u8; 2048];
                let len = datagram.payload.len().min(copy.len());
                copy[..len].copy_from_slice(&datagram.payload[..len]);
                self.demux_datagram(endpoint, datagram.from, &mut copy[..len]);
                self.poll_demux(endpoint);
            } else {
                self.datagram(endpoint, datagram.from, datagram.payload);
            }
        });
        self.datagrams.ring = Some(ring);
        self.datagrams.ring_addresses = addresses;
        if captured > 0 {
            self.flush_udp();
            self.settle_peers();
        }
    }

    /// One datagram to its peer's session, created on the first.
    fn datagram(&mut self, endpoint: usize, addr: SocketAddr, packet: &[u8]) {
        let (slot, known) = match self.datagrams.peers.by_addr.get(&addr) {
            Some(&slot) => (slot, true),
            None => match self.new_peer(endpoint, addr) {
                Some(slot) => (slot, false),
                None => return,
            },
        };
        bump(&self.core.counters().datagrams_in, 1);
        let Datagrams { endpoints, peers, closing, .. } = &mut self.datagrams;
        let Some(entry) = peers.slots[slot].as_mut() else { return };
        let token = entry.token(slot);
        entry.last_active = self.core.clock.stamp();
        entry.seen_twice |= known;
        let service = &*self.service;
        let handler = |session: &mut S::Peer, peer: &mut Peer<'_>| service.on_datagram(session, peer, packet);
        let timed = self.core.sample_handler();
        let called = call_peer(&self.core, endpoints, entry, PeerState::default(), "on_datagram", handler);
        self.core.handler_done(timed);
        match called {
            Some(state) => apply_peer_requests(&mut self.core, closing, entry, token, state),
            None => closing.push((token, CloseReason::HandlerPanicked)),
        }
        if !closing.is_empty() {
            // Close now, not after the batch: the next datagram from this address in the same
            // batch starts a new session, as `Peer::close` promises.
            self.settle_peers();
        }
    }

    /// The session of a new address; `None` when the service builds none (or its constructor
    /// panicked or closed it), and the datagram is dropped.
    fn new_peer(&mut self, endpoint: usize, addr: SocketAddr) -> Option<usize> {
        if !self.core.workers.peers.admit() {
            // Spoofed sources cost nothing beyond this count once the table is full.
            bump(&self.core.counters().peers_refused, 1);
            return None;
        }
        let (id, generation) = self.core.next_session();
        let mut state = PeerState::default();
        let queue = &mut self.datagrams.endpoints[endpoint].queue;
        let mut peer = Peer { addr, id, queue, state: &mut state, workers: &self.core.workers };
        let service = &*self.service;
        let Some(Some(session)) =
            guarded(self.core.counters(), id, "new peer session", || service.open_peer(&mut peer))
        else {
            log::debug!("worker {}: no session for {addr}; datagram dropped", self.core.index);
            self.core.workers.peers.release();
            return None;
        };
        bump(&self.core.counters().accepted, 1);
        bump(&self.core.counters().peers, 1);
        let entry = PeerEntry {
            session,
            addr,
            id,
            generation,
            endpoint,
            last_active: self.core.clock.stamp(),
            seen_twice: false,
            timer: Timer::default(),
            expiry: None,
        };
        let closed_at_once = state.close;
        let (slot, entry) = self.datagrams.peers.insert(entry);
        let token = entry.token(slot);
        if let Some(timeout) = peer_timeout(&self.core, false) {
            self.core.timers.arm(&mut entry.expiry, token, self.core.clock.deadline(timeout));
        }
        apply_peer_requests(&mut self.core, &mut self.datagrams.closing, entry, token, state);
        if closed_at_once {
            // Closed by its constructor: the datagram is not delivered.
            self.settle_peers();
            return None;
        }
        Some(slot)
    }

    /// Closes the peers that asked for it (or panicked) during the last calls.
    pub(super) fn settle_peers(&mut self) {
        while let Some((token, reason)) = self.datagrams.closing.pop() {
            self.close_peer(token, reason);
        }
    }

    pub(super) fn close_peer(&mut self, token: Token, reason: CloseReason) {
        let Some(mut entry) = self.datagrams.peers.remove(token) else { return };
        let counters = self.core.counters();
        bump(&counters.closed, 1);
        lower(&counters.peers, 1);
        if reason.is_error() {
            bump(&counters.errors, 1);
        }
        if reason != CloseReason::HandlerPanicked {
            // Sends made while closing are discarded, as on a connection.
            let closing = PeerState { close: true, ..PeerState::default() };
            let service = &*self.service;
            let endpoints = &mut self.datagrams.endpoints;
            call_peer(&self.core, endpoints, &mut entry, closing, "on_close", |s, p| {
                service.on_peer_close(s, p, reason)
            });
        }
        self.core.timers.disarm(&mut entry.timer);
        self.core.timers.disarm_entry(&mut entry.expiry);
        self.core.workers.peers.release();
        let id = entry.id;
        guarded(self.core.counters(), id, "drop", move || drop(entry));
    }

    /// The wheel fired `entry`: the timer of the peer `token` names, or its expiry.
    pub(super) fn peer_timer(&mut self, token: Token, fired: EntryId) {
        let Datagrams { endpoints, peers, closing, .. } = &mut self.datagrams;
        let Some(entry) = peers.get_mut(token) else { return };
        if entry.expiry == Some(fired) {
            entry.expiry = None;
            let timeout = peer_timeout(&self.core, entry.seen_twice)
                .map_or(u32::MAX, |t| t.as_millis().min(u128::from(u32::MAX)) as u32);
            let silent = entry.last_active.idle_for(self.core.clock.stamp());
            if silent >= timeout {
                closing.push((token, CloseReason::Timeout));
            } else {
                let rest = Duration::from_millis(u64::from(timeout - silent));
                self.core.timers.arm(&mut entry.expiry, token, self.core.clock.deadline(rest));
            }
            return;
        }
        if !entry.timer.fired(fired) {
            return;
        }
        let service = &*self.service;
        let handler = |session: &mut S::Peer, peer: &mut Peer<'_>| service.on_peer_timer(session, peer);
        match call_peer(&self.core, endpoints, entry, PeerState::default(), "on_timer", handler) {
            Some(state) => apply_peer_requests(&mut self.core, closing, entry, token, state),
            None => closing.push((token, CloseReason::HandlerPanicked)),
        }
    }

    /// Sends what handlers queued for UDP peers, one `sendmmsg` per batch of datagrams.
    pub(super) fn flush_udp(&mut self) {
        let counters = &self.core.own.counters;
        for endpoint in &mut self.datagrams.endpoints {
            let queued = endpoint.queue.len();
            if queued > 0 {
                let dropped = endpoint.socket.send_batch(&mut endpoint.queue);
                bump(&counters.datagrams_out, (queued - dropped) as u64);
                bump(&counters.datagrams_dropped, dropped as u64);
            }
        }
    }

    pub(super) fn close_all_peers(&mut self, reason: CloseReason) {
        let tokens: Vec<Token> = self.datagrams.peers.iter_mut().map(|(token, _)| token).collect();
        for token in tokens {
            self.close_peer(token, reason);
        }
    }
}
