//! The demultiplexed UDP sockets' path: every datagram to the socket's one machine on this
//! worker, which is polled after each batch and every `DEMUX_POLL_MS` for its own timers.

use std::net::SocketAddr;

use super::{EventLoop, Service, guarded};
use crate::rt::demux::DemuxIo;
use crate::rt::token::ConnId;
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

    /// Polls every demultiplexer when their interval has come.
    pub(super) fn poll_demuxes_when_due(&mut self) {
        let Some(at) = self.datagrams.demux_poll_at else { return };
        let now = self.core.clock.now();
        if now < at {
            return;
        }
        self.datagrams.demux_poll_at = Some(now + DEMUX_POLL_MS);
        for endpoint in 0..self.datagrams.endpoints.len() {
            self.poll_demux(endpoint);
        }
        self.flush_udp();
    }

    /// The server is stopping: each machine says its last words, sent at once.
    pub(super) fn shut_demuxes_down(&mut self) {
        for endpoint in 0..self.datagrams.endpoints.len() {
            self.with_demux(endpoint, "demux shutdown", |service, demux, io| service.on_demux_shutdown(demux, io));
        }
        self.datagrams.demux_poll_at = None;
        self.flush_udp();
    }

    /// Calls `run` with the machine of `endpoint` (if it has one) and its I/O. A panic drops the
    /// machine's call, not the worker: the machine stays, as a connection's listener would.
    fn with_demux(&mut self, endpoint: usize, what: &str, run: impl FnOnce(&S, &mut S::Demux, &mut DemuxIo<'_>)) {
        let Some(socket) = self.datagrams.endpoints.get_mut(endpoint) else { return };
        let Some(demux) = socket.demux.as_mut() else { return };
        let mut io = DemuxIo {
            queue: &mut socket.queue,
            now: self.core.clock.now(),
            unix_seconds: self.core.clock.unix_seconds(),
            worker: self.core.index,
            counters: &self.core.own.counters,
        };
        let id = ConnId::new(self.core.index, 0);
        let service = &*self.service;
        guarded(&self.core.own.counters, id, what, || run(service, demux, &mut io));
    }
}
