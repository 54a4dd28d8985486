//! One upgraded connection's machine: frames in the input become messages for the caller's
//! [`Events`], pings get pongs, the close handshake runs, and an idle connection is pinged, then
//! closed. What it sends goes into a [`Sink`].

use std::time::Duration;

use tungstenite::protocol::frame::coding::{Control, OpCode};

use super::Message;
use super::close_code::{ABNORMAL, GOING_AWAY, NO_STATUS};
use super::codec::{self, Assembler, Event, Violation, write_close_frame, write_frame};
use crate::proto::Sink;

/// How long a close we started waits for the client's answer before the connection closes.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

#[cfg(feature = "deflate")]
thread_local! {
    /// Per worker thread: the decompressor of every connection's compressed messages (none
    /// takes over context, so one serves all) and the message it inflated last.
    static INFLATER: std::cell::RefCell<(super::deflate::Inflater, Vec<u8>)> = Default::default();
}

/// What the machine tells the connection's user: complete messages, and the end of the
/// WebSocket (once, with its close code). Each call gets the machine's [`State`], through which
/// the user may send or close.
pub(crate) trait Events<S> {
    /// A complete message.
    fn on_message(&mut self, state: &mut State, sink: &mut S, message: Message<'_>);
    /// The WebSocket ended: the client's close code (1005 when its close had none), the code of
    /// the violation or timeout smoke closed for, or 1006 when the connection ended without a
    /// close frame.
    fn on_close(&mut self, state: &mut State, sink: &mut S, code: u16, reason: &str);
}

/// One upgraded connection. Holds heap memory only while a fragmented message is being
/// reassembled.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    assembler: Assembler,
    state: State,
}

/// The part of the machine its user reaches: whether the close has started, and sending a close.
#[derive(Debug, Default)]
pub(crate) struct State {
    close_sent: bool,
    close_received: bool,
    /// `Events::on_close` has run (it runs once).
    reported: bool,
    /// A frame arrived since the idle timer last fired.
    active: bool,
    /// The idle timer sent a ping that is still unanswered.
    pinged: bool,
    /// Closed for a violation: our close frame and FIN are out, and whatever the client still
    /// sends is read and dropped until it closes too (or the close wait ends).
    draining: bool,
    /// permessage-deflate, when the upgrade negotiated it.
    #[cfg(feature = "deflate")]
    pub(crate) deflate: Option<super::deflate::Negotiated>,
    /// A dedicated connection's own compression contexts (boxed: only those pay for them).
    #[cfg(feature = "deflate")]
    pub(crate) contexts: Option<Box<super::deflate::Contexts>>,
}

impl State {
    /// True when the client may send compressed messages.
    fn compression(&self) -> bool {
        #[cfg(feature = "deflate")]
        return self.deflate.is_some();
        #[cfg(not(feature = "deflate"))]
        false
    }

    /// The LZ77 window this connection's outgoing messages are compressed with by the worker's
    /// shared compressor, if they are (a dedicated connection has its own: see `contexts`).
    pub(crate) fn compressing_window(&self) -> Option<u8> {
        #[cfg(feature = "deflate")]
        return self.deflate.filter(|d| !d.dedicated).and_then(super::deflate::Negotiated::compressing_window);
        #[cfg(not(feature = "deflate"))]
        None
    }

    /// Takes on what the upgrade negotiated (a dedicated connection's contexts are made here).
    #[cfg(feature = "deflate")]
    pub(crate) fn set_deflate(&mut self, negotiated: Option<super::deflate::Negotiated>) {
        self.deflate = negotiated;
        self.contexts = negotiated.filter(|d| d.dedicated).map(|d| Box::new(super::deflate::Contexts::new(d)));
    }

    /// A dedicated connection's compressor and whether it keeps its context, if it has one.
    #[cfg(feature = "deflate")]
    pub(crate) fn dedicated_deflater(&mut self) -> Option<(&mut super::deflate::Deflater, bool)> {
        let keep = self.deflate.is_some_and(|d| !d.server_no_context_takeover);
        self.contexts.as_mut()?.deflater.as_mut().map(|deflater| (deflater, keep))
    }

    /// True once our close frame is out: nothing else may be sent.
    pub(crate) fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Sends our close frame (once) and waits `CLOSE_WAIT` for the answer.
    pub(crate) fn close(&mut self, sink: &mut impl Sink, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        write_close_frame(sink, code, reason);
        self.close_sent = true;
        sink.set_timer(CLOSE_WAIT);
    }

    fn report<S>(&mut self, events: &mut impl Events<S>, sink: &mut S, code: u16, reason: &str) {
        if !self.reported {
            self.reported = true;
            events.on_close(self, sink, code, reason);
        }
    }
}

impl Connection {
    /// The machine's state, for its user's sends and closes.
    pub(crate) fn state(&mut self) -> &mut State {
        &mut self.state
    }

    /// The upgrade is done (the 101 written): the idle check starts.
    pub(crate) fn open(&mut self, sink: &mut impl Sink, idle_timeout: Option<Duration>) {
        if let Some(idle) = idle_timeout {
            sink.set_timer(idle);
        }
    }

    /// Handles the complete frames at the front of `input`; returns the bytes consumed.
    pub(crate) fn serve<S: Sink>(
        &mut self,
        sink: &mut S,
        input: &mut [u8],
        max_message: usize,
        events: &mut impl Events<S>,
    ) -> usize {
        let mut consumed = 0;
        while consumed < input.len() && !sink.is_closing() {
            if self.state.close_received || self.state.draining {
                // Nothing may follow a close frame; what does is ignored.
                return input.len();
            }
            let buf = &input[consumed..];
            let frame = match codec::parse_client_frame(buf, max_message, self.state.compression()) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(violation) => {
                    fail(&mut self.state, sink, events, violation);
                    return input.len();
                }
            };
            // The input is ours until we return, and a whole frame is consumed: its payload is
            // unmasked where it lies, without a copy.
            let payload = &mut input[consumed + frame.header_len..consumed + frame.len()];
            consumed += frame.len();
            self.state.active = true;
            codec::unmask(payload, frame.header.mask.unwrap_or_default(), 0);
            let Connection { assembler, state } = &mut *self;
            match assembler.push(&frame.header, payload, max_message) {
                Ok(None) => {}
                Ok(Some(Event::Compressed { text, payload })) => {
                    inflate_and_handle(text, payload, max_message, state, sink, events);
                    assembler.release();
                }
                Ok(Some(event)) => {
                    let finished_message = matches!(event, Event::Text(_) | Event::Binary(_));
                    handle(event, state, sink, events);
                    if finished_message {
                        assembler.release();
                    }
                }
                Err(violation) => fail(state, sink, events, violation),
            }
        }
        consumed
    }

    /// The connection's timer fired: the close we started went unanswered, or the idle check.
    pub(crate) fn timer_fired<S: Sink>(
        &mut self,
        sink: &mut S,
        idle_timeout: Option<Duration>,
        events: &mut impl Events<S>,
    ) {
        let state = &mut self.state;
        if state.close_sent {
            state.report(events, sink, ABNORMAL, "");
            if sink.buffered() > 0 {
                // Not even our close frame was taken in all this time: the peer is not reading,
                // and a graceful close would wait for it forever.
                sink.abort();
            } else {
                sink.close();
            }
            return;
        }
        let Some(idle) = idle_timeout else { return };
        if std::mem::take(&mut state.active) {
            state.pinged = false;
        } else if !state.pinged {
            write_frame(sink, OpCode::Control(Control::Ping), &[]);
            state.pinged = true;
        } else {
            // Silent through a ping: waiting for its answer to a close frame would be no
            // different.
            state.close(sink, GOING_AWAY, "idle timeout");
            state.report(events, sink, GOING_AWAY, "idle timeout");
            sink.close();
            return;
        }
        sink.set_timer(idle);
    }

    /// The server is stopping: say so with 1001 (the connection closes once that is flushed,
    /// without waiting for the client's answer).
    pub(crate) fn shutting_down<S: Sink>(&mut self, sink: &mut S, events: &mut impl Events<S>) {
        self.state.close(sink, GOING_AWAY, "server shutting down");
        self.state.report(events, sink, GOING_AWAY, "server shutting down");
    }

    /// The connection ended: 1006 if no close frame settled it.
    pub(crate) fn closed<S>(&mut self, sink: &mut S, events: &mut impl Events<S>) {
        self.state.report(events, sink, ABNORMAL, "");
    }
}

/// A compressed message: inflated (never past `max_message`: 1009 before a bomb goes off),
/// then handled as any other.
fn inflate_and_handle<S: Sink>(
    text: bool,
    payload: &[u8],
    max_message: usize,
    state: &mut State,
    sink: &mut S,
    events: &mut impl Events<S>,
) {
    #[cfg(feature = "deflate")]
    INFLATER.with_borrow_mut(|(shared, inflated)| {
        use super::close_code::{INVALID_PAYLOAD, MESSAGE_TOO_BIG};
        use super::deflate::InflateError;
        let keep = state.deflate.is_some_and(|d| d.dedicated && !d.client_no_context_takeover);
        let inflater = match &mut state.contexts {
            Some(contexts) => &mut contexts.inflater,
            None => shared,
        };
        let outcome = match inflater.message(payload, inflated, max_message, keep) {
            Ok(()) => codec::inflated(text, inflated),
            Err(InflateError::TooBig) => Err(Violation { code: MESSAGE_TOO_BIG, reason: "message above max_message" }),
            Err(InflateError::Corrupt) => {
                Err(Violation { code: INVALID_PAYLOAD, reason: "compressed message does not inflate" })
            }
        };
        match outcome {
            Ok(event) => handle(event, state, sink, events),
            Err(violation) => fail(state, sink, events, violation),
        }
    });
    #[cfg(not(feature = "deflate"))]
    let _ = (text, payload, max_message, state, sink, events);
}

fn handle<S: Sink>(event: Event<'_>, state: &mut State, sink: &mut S, events: &mut impl Events<S>) {
    match event {
        Event::Text(text) => events.on_message(state, sink, Message::Text(text)),
        Event::Binary(bytes) => events.on_message(state, sink, Message::Binary(bytes)),
        Event::Ping(payload) => {
            if !state.close_sent {
                write_frame(sink, OpCode::Control(Control::Pong), payload);
            }
        }
        Event::Pong(_) => state.pinged = false,
        Event::Close(code, reason) => {
            state.close_received = true;
            if !state.close_sent {
                // Echo the code (RFC 6455 §5.5.1); an empty close gets an empty one.
                match code {
                    Some(code) => state.close(sink, code, ""),
                    None => {
                        write_frame(sink, OpCode::Control(Control::Close), &[]);
                        state.close_sent = true;
                        // As for a coded close: a peer that never reads our answer must not
                        // hold the connection open waiting for the flush.
                        sink.set_timer(CLOSE_WAIT);
                    }
                }
            }
            state.report(events, sink, code.unwrap_or(NO_STATUS), reason);
            // The server closes the TCP connection first (RFC 6455 §7.1.1).
            sink.close();
        }
        // Inflated by the caller before it comes here.
        Event::Compressed { .. } => {}
    }
}

/// The client broke the protocol: send the close frame with the violation's code, then FIN,
/// and drain. Closing the socket at once would be simpler, but the client may still be sending
/// (the rest of an oversized frame, say): closing with unread input makes the kernel answer with
/// a reset, which can destroy our close frame before the client reads it.
fn fail<S: Sink>(state: &mut State, sink: &mut S, events: &mut impl Events<S>, violation: Violation) {
    log::debug!("WebSocket closed with {}: {}", violation.code, violation.reason);
    state.close(sink, violation.code, violation.reason);
    state.report(events, sink, violation.code, violation.reason);
    state.draining = true;
    sink.shutdown_write();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TestSink;

    /// Records what the machine reported.
    #[derive(Default)]
    struct Recorder {
        messages: Vec<String>,
        closes: Vec<(u16, String)>,
    }

    impl Events<TestSink> for Recorder {
        fn on_message(&mut self, _: &mut State, _: &mut TestSink, message: Message<'_>) {
            self.messages.push(format!("{message:?}"));
        }
        fn on_close(&mut self, _: &mut State, _: &mut TestSink, code: u16, reason: &str) {
            self.closes.push((code, reason.to_owned()));
        }
    }

    fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    #[test]
    fn messages_pings_and_the_close_handshake() {
        let (mut ws, mut sink, mut events) = (Connection::default(), TestSink::new(), Recorder::default());
        let mut input = masked(1, b"hi");
        input.extend(masked(9, b"p"));
        input.extend(masked(8, &1000u16.to_be_bytes()));
        assert_eq!(ws.serve(&mut sink, &mut input, 1 << 20, &mut events), input.len());
        assert_eq!(events.messages, ["Text(\"hi\")"]);
        assert_eq!(events.closes, [(1000, String::new())]);
        assert_eq!(sink.out, [0x8a, 1, b'p', 0x88, 2, 0x03, 0xe8], "a pong, then the close echoed");
        assert!(sink.closed && ws.state().close_sent());
    }

    #[test]
    fn an_empty_close_is_answered_and_waited_for_like_a_coded_one() {
        let (mut ws, mut sink, mut events) = (Connection::default(), TestSink::new(), Recorder::default());
        ws.serve(&mut sink, &mut masked(8, b""), 1 << 20, &mut events);
        assert_eq!(sink.out, [0x88, 0], "an empty close back");
        assert_eq!(events.closes, [(1005, String::new())]);
        assert_eq!(sink.timer, Some(CLOSE_WAIT), "the close wait runs");
        let mut stuck = TestSink { out: vec![0x88, 0], ..TestSink::new() };
        ws.timer_fired(&mut stuck, None, &mut events);
        assert!(stuck.aborted, "a peer that took nothing in all that time is reset");
    }

    #[test]
    fn a_violation_closes_with_its_code_and_drains() {
        let (mut ws, mut sink, mut events) = (Connection::default(), TestSink::new(), Recorder::default());
        let mut unmasked = [0x81, 0x01, b'x'];
        ws.serve(&mut sink, &mut unmasked, 1 << 20, &mut events);
        assert_eq!(events.closes[0].0, 1002);
        assert!(sink.write_shut && !sink.closed, "FIN sent, then the client is drained");
        let mut late = masked(1, b"late");
        assert_eq!(ws.serve(&mut sink, &mut late, 1 << 20, &mut events), late.len(), "read and ignored");
        assert!(events.messages.is_empty());
    }

    #[test]
    fn an_idle_connection_is_pinged_then_closed_with_1001() {
        let idle = Some(Duration::from_secs(1));
        let (mut ws, mut sink, mut events) = (Connection::default(), TestSink::new(), Recorder::default());
        ws.open(&mut sink, idle);
        ws.timer_fired(&mut sink, idle, &mut events);
        assert_eq!(sink.out, [0x89, 0], "a ping");
        ws.timer_fired(&mut sink, idle, &mut events);
        assert_eq!(events.closes, [(1001, "idle timeout".to_owned())]);
        assert!(sink.closed);
    }
}
