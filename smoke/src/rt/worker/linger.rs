//! The lingering close, as nginx's `lingering_close`: a connection closed while its peer may
//! still be sending (a request refused before its body arrived, input nobody read) would make
//! the kernel answer with RST, and a client that gets a reset often reports that instead of the
//! response it was sent (a 413, a 400). So the session ends as usual, but the socket first
//! closes its write side (the peer reads the response and then the end), and reads and drops
//! what still arrives until the peer closes too, falls quiet for [`LINGER_QUIET`], or
//! [`LINGER_TIME`] has passed.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::stream::{Connection, Wake};
use crate::rt::conn::{CloseReason, Flags};
use crate::rt::core::Core;
use crate::rt::token::{Kind, Token};
use crate::rt::wheel::TimerRequest;
use crate::stats::bump;

/// The longest a socket lingers: nginx's `lingering_time`.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(30);
/// How long a lingering socket waits for more input before it closes: nginx's
/// `lingering_timeout`.
pub(crate) const LINGER_QUIET: Duration = Duration::from_secs(5);

impl<St> Connection<St> {
    /// True when closing the socket now could reset the peer: it has not ended its stream and
    /// may have sent what nobody read (input is queued, or the session asked to linger).
    pub(super) fn may_reset_peer(&self) -> bool {
        let flags = self.state.flags;
        !flags.has(Flags::READ_CLOSED)
            && (flags.has(Flags::LINGER | Flags::READ_READY | Flags::READ_TO_EAGAIN) || !self.input.is_empty())
    }

    /// Starts lingering, the session already ended: the write side closes and both timers are
    /// armed. False when the socket refuses, and it closes at once.
    pub(super) fn begin_linger(&mut self, core: &mut Core) -> bool {
        if !self.state.flags.has(Flags::WRITE_SHUT) && self.stream.shutdown_write().is_err() {
            return false;
        }
        self.state.flags.set(Flags::LINGERING | Flags::WRITE_SHUT | Flags::READ_READY);
        bump(&core.counters().lingering, 1);
        let token = Token::new(Kind::Connection, self.stream.as_raw_fd() as usize, self.id.generation());
        self.state.timer.request = TimerRequest::after(LINGER_TIME);
        core.timers.apply(&mut self.state.timer, token, &core.clock);
        core.timers.arm(&mut self.watch, token, core.clock.deadline(LINGER_QUIET));
        // What is queued already is read now: a peer that has closed too ends it at once.
        self.linger(core, token, Wake::Readable { stops_short: true }).is_none()
    }

    /// A wake-up of a lingering socket: input is read and dropped. `Some` when the socket is
    /// done: the peer closed or failed, a timer fired, or the server is stopping.
    pub(super) fn linger(&mut self, core: &mut Core, token: Token, why: Wake) -> Option<CloseReason> {
        match why {
            Wake::Readable { .. } => {}
            Wake::Retry => self.state.flags.clear(Flags::QUEUED),
            Wake::Timer | Wake::Watch | Wake::Shutdown => return Some(CloseReason::Closed),
            Wake::Connected | Wake::Writable | Wake::Delivered => return None,
        }
        if self.state.flags.has(Flags::QUEUED) {
            // Already in the retry queue: it reads then, once.
            return None;
        }
        let mut budget = core.limits.read_budget;
        let mut heard = false;
        loop {
            match self.stream.recv(&mut core.scratch) {
                Ok(0) => return Some(CloseReason::PeerClosed),
                Ok(n) => {
                    heard = true;
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        // The others get their turn; this one reads on in the next.
                        self.state.flags.set(Flags::QUEUED);
                        core.retry.push(token);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Some(CloseReason::Reset),
            }
        }
        if heard {
            core.timers.arm(&mut self.watch, token, core.clock.deadline(LINGER_QUIET));
        }
        None
    }
}
