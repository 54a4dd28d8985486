//! Output waiting for the peer: `EPOLLOUT` armed while the socket is full, disarmed once it
//! drains, and the send timeout that closes a connection whose peer takes nothing.

use std::os::fd::AsRawFd;

use super::stream::Connection;
use crate::rt::conn::{CloseReason, Flags};
use crate::rt::core::Core;
use crate::rt::token::Token;
use crate::sys::Interest;

impl<St> Connection<St> {
    /// Output the socket did not take waits for room: EPOLLOUT armed, the peer's progress watched.
    pub(super) fn arm_write(&mut self, core: &mut Core, token: Token) -> Option<CloseReason> {
        if let Err(e) = core.epoll.modify(self.stream.as_raw_fd(), token.to_epoll(), Interest::READ_WRITE) {
            return Some(CloseReason::from_io(&e));
        }
        self.state.flags.set(Flags::WRITE_ARMED);
        self.watch_output(core, token);
        None
    }

    /// Sends what is pending; true when that ended a wait for the peer (EPOLLOUT is disarmed,
    /// and the session may stream more).
    #[inline]
    pub(super) fn flush(&mut self, core: &mut Core, token: Token) -> Result<bool, CloseReason> {
        if self.state.sendable() == 0 {
            return Ok(false);
        }
        self.send(core)?;
        if self.state.sendable() > 0 || !self.state.flags.has(Flags::WRITE_ARMED) {
            return Ok(false);
        }
        let fd = self.stream.as_raw_fd();
        core.epoll.modify(fd, token.to_epoll(), Interest::READABLE).map_err(|e| CloseReason::from_io(&e))?;
        self.state.flags.clear(Flags::WRITE_ARMED);
        Ok(true)
    }

    /// Output has started to wait for the peer: unless a look at its progress is already due,
    /// one is set for half of `send_timeout` from now, against what it has acknowledged so far.
    fn watch_output(&mut self, core: &mut Core, token: Token) {
        if let Some(timeout) = core.limits.send_timeout
            && self.watch.is_none()
        {
            self.acked_mark = self.stream.bytes_acked().unwrap_or(0) as u32;
            self.state.flags.clear(Flags::SEND_STALLED);
            core.timers.arm(&mut self.watch, token, core.clock.timer_deadline(timeout / 2));
        }
    }

    /// A look at the progress of a peer that output waits for, every half `send_timeout`:
    /// progress is what the peer acknowledged, not what our socket buffer took (which grows
    /// when other sockets free memory, while the peer reads nothing). Two looks in a row with
    /// nothing taken, and the connection closes: between one and one and a half
    /// `send_timeout` after the peer stopped.
    pub(super) fn check_send_progress(&mut self, core: &mut Core, token: Token) -> Option<CloseReason> {
        let timeout = core.limits.send_timeout?;
        // Without the count (a kernel before 4.1) there is no telling: every look is progress,
        // and the send timeout is off.
        let acked = self.stream.bytes_acked().map_or(self.acked_mark.wrapping_add(1), |acked| acked as u32);
        if acked != self.acked_mark {
            self.acked_mark = acked;
            self.state.flags.clear(Flags::SEND_STALLED);
        } else if self.state.flags.has(Flags::SEND_STALLED) {
            return Some(CloseReason::SendTimeout);
        } else {
            self.state.flags.set(Flags::SEND_STALLED);
        }
        core.timers.arm(&mut self.watch, token, core.clock.timer_deadline(timeout / 2));
        None
    }
}
