//! The demultiplexed UDP sockets' path: every datagram to the socket's one machine on this
//! worker, which is polled after each batch and every `DEMUX_POLL_MS` (a timer on the wheel)
//! for its own timers.

use std::net::SocketAddr;
use std::time::Duration;

use super::{EventLoop, Service, guarded};
use crate::rt::demux::DemuxIo;
use crate::rt::token::{ConnId, Kind, Token};
use crate::rt::wheel::EntryId;
use crate::stats::bump;

/// How often a worker's demultiplexers are polled: the resolution of their timers (a reliable
/// message's resend, a keep-alive, a session's timeout). Only workers with one pay for it.
pub(super) const DEMUX_POLL_MS: u64 = 10;

impl<S: Service> EventLoop<S> {
    /// One datagram to the machine of a demultiplexed socket.
    pub(super) fn demux_datagram(&mut self, endpoint: usize, from: SocketAddr, packet: &mut [u8]) {
        bump(&self.core.counters().datagrams_in, 1);
        self.with_demux(endpoint, "demux datagram", |service, demux, io| {
            service.on_demux_datagram(demux, io, from, packet);
        });
    }

    /// Lets the machine of `endpoint` send what its last datagrams queued up.
    pub(super) fn poll_demux(&mut self, endpoint: usize) {
        self.with_demux(endpoint, "demux poll", |service, demux, io| service.on_demux_poll(demux, io));
    }

    /// Arms each demultiplexed socket's poll on the timer wheel (no cost to a worker without
    /// one, and none to the loop's turn: the wheel's next deadline already covers it).
    pub(super) fn arm_demux_polls(&mut self) {
        let deadline = self.core.clock.deadline(Duration::from_millis(DEMUX_POLL_MS));
        for (index, endpoint) in self.datagrams.endpoints.iter_mut().enumerate() {
            if endpoint.demux.is_some() {
                self.core.timers.arm(&mut endpoint.demux_poll, Token::of(Kind::Udp, index), deadline);
            }
        }
    }

    /// The wheel fired `fired` for the socket `endpoint`: its machine's poll, then the next.
    pub(super) fn demux_timer(&mut self, endpoint: usize, fired: EntryId) {
        let Some(socket) = self.datagrams.endpoints.get_mut(endpoint) else { return };
        if socket.demux_poll != Some(fired) {
            return;
        }
        socket.demux_poll = None;
        self.poll_demux(endpoint);
        self.flush_udp();
        if self.drain_deadline.is_none() {
            let deadline = self.core.clock.deadline(Duration::from_millis(DEMUX_POLL_MS));
            let socket = &mut self.datagrams.endpoints[endpoint];
            self.core.timers.arm(&mut socket.demux_poll, Token::of(Kind::Udp, endpoint), deadline);
        }
    }

    /// The server is stopping: each machine says its last words, sent at once.
    pub(super) fn shut_demuxes_down(&mut self) {
        for endpoint in 0..self.datagrams.endpoints.len() {
            self.with_demux(endpoint, "demux shutdown", |service, demux, io| service.on_demux_shutdown(demux, io));
            self.core.timers.disarm_entry(&mut self.datagrams.endpoints[endpoint].demux_poll);
        }
        self.flush_udp();
    }

    /// Calls `run` with the machine of `endpoint` (if it has one) and its I/O. A panic drops the
    /// machine's call, not the worker: the machine stays, as a connection's listener would.
    fn with_demux(&mut self, endpoint: usize, what: &str, run: impl FnOnce(&S, &mut S::Demux, &mut DemuxIo<'_>)) {
        let Some(socket) = self.datagrams.endpoints.get_mut(endpoint) else { return };
        let Some(demux) = socket.demux.as_mut() else { return };
        let mut io = self.core.demux_io(&mut socket.queue);
        let id = ConnId::new(self.core.index, 0);
        let service = &*self.service;
        guarded(&self.core.own.counters, id, what, || run(service, demux, &mut io));
    }
}
