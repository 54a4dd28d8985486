//! The runtime's connection as the protocol machines' [`Sink`]: their bytes go to its output
//! queue, their timer is its timer, their close is its close.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proto::Sink;
use crate::rt::conn::Conn;

impl Sink for Conn<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        Conn::write(self, bytes);
    }
    #[inline]
    fn write_with(&mut self, fill: impl FnOnce(&mut Vec<u8>)) {
        Conn::write_with(self, fill);
    }
    #[inline]
    fn buffered(&self) -> usize {
        Conn::buffered(self)
    }
    #[inline]
    fn is_backpressured(&self) -> bool {
        Conn::is_backpressured(self)
    }
    fn set_timer(&mut self, after: Duration) {
        Conn::set_timer(self, after);
    }
    fn close(&mut self) {
        Conn::close(self);
    }
    fn close_lingering(&mut self) {
        Conn::close_lingering(self);
    }
    fn abort(&mut self) {
        Conn::abort(self);
    }
    fn shutdown_write(&mut self) {
        Conn::shutdown_write(self);
    }
    #[inline]
    fn is_closing(&self) -> bool {
        Conn::is_closing(self)
    }
    fn peer_addr(&self) -> Option<SocketAddr> {
        Conn::peer_addr(self).ok()
    }
    fn is_draining(&self) -> bool {
        Conn::is_shutting_down(self)
    }
    #[inline]
    fn now(&self) -> u64 {
        self.now
    }
}
