//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature; not part of the API):
//! each runs one sans-IO machine the way the runtime does, over input split into pieces, and
//! returns what a peer would see, so a target can check it never panics and that the pieces'
//! boundaries change nothing.

use crate::proto::http::{self, Answer, Context};
use crate::proto::ws::{self, Message, State};
use crate::proto::{NoServer, Sink, TestSink};

/// What a peer saw of one connection: every byte written to it, whether it was closed (or
/// reset), and what the protocol handed its user.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub output: Vec<u8>,
    pub closed: bool,
    pub events: Vec<String>,
}

/// Feeds `pieces` to `serve` as the runtime feeds a connection: each piece is appended to what
/// is left unconsumed, and `serve` is called until it consumes nothing more or the connection
/// is closing.
fn drive(pieces: &[&[u8]], mut serve: impl FnMut(&mut TestSink, &mut [u8], &mut Vec<String>) -> usize) -> Seen {
    let mut sink = TestSink::new();
    let (mut kept, mut events) = (Vec::new(), Vec::new());
    for piece in pieces {
        if sink.is_closing() {
            break;
        }
        kept.extend_from_slice(piece);
        while !kept.is_empty() && !sink.is_closing() {
            let consumed = serve(&mut sink, &mut kept, &mut events);
            assert!(consumed <= kept.len(), "consumed {consumed} of {} bytes", kept.len());
            if consumed == 0 {
                break;
            }
            kept.drain(..consumed);
        }
    }
    Seen { output: sink.out, closed: sink.closed || sink.aborted, events }
}

/// HTTP/1.1 requests in `pieces`, against small limits (1 KiB of head, 16 headers, 4 KiB of
/// body), each answered with its method, path and body. `Expect: 100-continue`'s interim
/// response depends on where the pieces end, so it is left out of the output.
pub fn http(pieces: &[&[u8]]) -> Seen {
    let limits = http::Limits { max_header_bytes: 1024, max_headers: 16, max_body: 4096, ..http::Limits::default() };
    let context = Context { limits: &limits, now: 0, server: &NoServer };
    let mut connection = http::Connection::default();
    let mut seen = drive(pieces, |sink, input, events| {
        let served = connection.serve(sink, input, &context, |req, res, _| {
            events.push(format!("{} {} {}", req.method(), req.path(), req.body().len()));
            res.body(req.body());
            Answer::Respond
        });
        served.consumed
    });
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    while let Some(at) = seen.output.windows(CONTINUE.len()).position(|w| w == CONTINUE) {
        seen.output.drain(at..at + CONTINUE.len());
    }
    seen
}

/// A request head as read by a parser, with at most 16 headers.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadSyntax<'b> {
    /// Method, target, minor version, headers (name, value) and the head's length.
    Complete(&'b [u8], &'b [u8], u8, Vec<(&'b [u8], &'b [u8])>, usize),
    Incomplete,
    Malformed,
}

/// Reads the head at the start of `buf` with smoke's own parser, for the differential target.
pub fn head_syntax(buf: &[u8]) -> HeadSyntax<'_> {
    match http::parse::parse(buf, 16, |_, _| Ok::<(), ()>(())) {
        Ok(head) => {
            HeadSyntax::Complete(head.method, head.target, head.minor_version, head.fields.iter().collect(), head.len)
        }
        Err(http::parse::Syntax::Incomplete) => HeadSyntax::Incomplete,
        Err(_) => HeadSyntax::Malformed,
    }
}

/// A chunked body fed a growing prefix at a time, each prefix ending where `pieces` do, as an
/// HTTP connection keeps its input: `Some(body)` once complete, `None` while more is needed or
/// when refused (the refusal's status in the error).
pub fn chunked(pieces: &[&[u8]], max_body: usize) -> Result<Option<Vec<u8>>, u16> {
    let (mut input, mut resume, mut body) = (Vec::new(), 0, Vec::new());
    for piece in pieces {
        input.extend_from_slice(piece);
        match http::chunked::decode(&input, &mut resume, &mut body, max_body, 1024) {
            Ok(http::chunked::Decoded::Complete { consumed }) => {
                assert!(consumed <= input.len());
                return Ok(Some(body));
            }
            Ok(http::chunked::Decoded::Partial) => {}
            Err(rejection) => return Err(rejection.status()),
        }
    }
    Ok(None)
}

/// An upgraded WebSocket connection's input in `pieces` (client frames), with a 1 KiB message
/// limit; its messages are echoed, and the events are what its user saw.
pub fn websocket(pieces: &[&[u8]]) -> Seen {
    struct Echo<'e>(&'e mut Vec<String>);
    impl ws::Events<TestSink> for Echo<'_> {
        fn on_message(&mut self, _state: &mut State, sink: &mut TestSink, message: Message<'_>) {
            self.0.push(format!("{:?} {:?}", message.opcode(), message.payload()));
            ws::write_frame(sink, message.opcode(), message.payload());
        }
        fn on_close(&mut self, _state: &mut State, _sink: &mut TestSink, code: u16, reason: &str) {
            self.0.push(format!("close {code} {reason:?}"));
        }
    }
    let mut connection = ws::Connection::default();
    drive(pieces, |sink, input, events| connection.serve(sink, input, 1024, &mut Echo(events)))
}

/// What the packet ring's parser makes of a frame: the sender, the destination and the payload,
/// or why it refused it.
pub fn ring_frame(frame: &[u8], verify: bool) -> Result<(std::net::SocketAddr, std::net::SocketAddr, &[u8]), String> {
    crate::proto::ring::parse_udp(frame, verify).map(|c| (c.from, c.to, c.payload)).map_err(|e| format!("{e:?}"))
}

/// The packet ring's kernel filter for `ports`, run over `frame` as the kernel would: the bytes
/// of it kept (0: dropped), or an error when no filter can be built for those ports.
pub fn ring_filter(ports: &[u16], snap: u32, frame: &[u8]) -> Result<u32, String> {
    let program = crate::sys::bpf::udp_port_filter(ports, snap)?;
    Ok(crate::sys::bpf::run(&program, frame))
}

/// The PROXY protocol header parser on every prefix of `input`, as a connection's bytes would
/// arrive: what a prefix says never contradicts what more bytes say. Before the header is
/// whole, a prefix is incomplete (or already refused, and refused for good); once whole, every
/// longer prefix reads the same header. Returns the whole input's reading, as a string.
pub fn proxy_header(input: &[u8]) -> String {
    use crate::proto::proxy::{Header, parse};
    let whole = parse(input);
    let mut refused_at = None;
    for end in 0..=input.len() {
        let prefix = parse(&input[..end]);
        match (&prefix, &whole) {
            (Ok(Header::Complete { len, .. }), _) => {
                assert!(*len <= end, "a header of {len} bytes read from {end}");
                assert_eq!(prefix, whole, "a whole header changed with more bytes");
            }
            (Ok(Header::Incomplete), Ok(Header::Complete { len, .. })) => assert!(end < *len, "whole at {len}"),
            (Ok(Header::Incomplete), _) => {}
            (Err(_), _) => {
                refused_at.get_or_insert(end);
                assert!(whole.is_err(), "refused at {end} bytes, taken at {}: {whole:?}", input.len());
            }
        }
        if let Some(at) = refused_at {
            assert!(prefix.is_err(), "refused at {at} bytes, not at {end}");
        }
    }
    format!("{whole:?}")
}

/// A game session's channels fed `packets` as a peer's payloads, 10 ms apart, each followed by
/// a flush: never a panic, every message delivered at most 64 KiB, every packet written at most
/// 1,200 bytes. Returns how many messages were delivered.
#[cfg(feature = "game")]
pub fn channels(packets: &[&[u8]]) -> usize {
    use crate::proto::channel::{Channel, Channels, MAX_MESSAGE_BYTES};
    let mut channels = Channels::default();
    let mut delivered = 0;
    for (turn, packet) in packets.iter().enumerate() {
        let now = turn as u64 * 10;
        channels.receive(now, packet, |_, message| {
            assert!(!message.is_empty() && message.len() <= MAX_MESSAGE_BYTES, "a message of {}", message.len());
            delivered += 1;
        });
        // Something queued both ways, so the flush has acks, resends and new messages to write.
        let _ = channels.send(Channel::ReliableOrdered, packet);
        let _ = channels.send(Channel::Unreliable, packet);
        channels.flush(now, |written| assert!(written.len() <= 1200, "a packet of {}", written.len()));
    }
    delivered
}

/// The game target's client: its keys, and where it and three strangers send from.
#[cfg(feature = "game")]
const CLIENT_TO_SERVER: [u8; 32] = [1; 32];
#[cfg(feature = "game")]
const SERVER_TO_CLIENT: [u8; 32] = [2; 32];
#[cfg(feature = "game")]
const GAME_SOURCES: [&str; 4] = ["127.0.0.1:9001", "127.0.0.1:9002", "10.0.0.1:9", "[::1]:9"];

/// A packet recorder for the server machine's answers.
#[cfg(feature = "game")]
#[derive(Default)]
struct Sent(Vec<(std::net::SocketAddr, Vec<u8>)>);

#[cfg(feature = "game")]
impl crate::proto::netcode::server::Transmit for Sent {
    fn send(&mut self, to: std::net::SocketAddr, packet: &[u8]) {
        self.0.push((to, packet.to_vec()));
    }
}

/// A netcode server (protocol 1, its key all 7s) with one client, from the first of
/// `GAME_SOURCES`, that completed the handshake at Unix second 1000.
#[cfg(feature = "game")]
fn server_with_a_client() -> crate::proto::netcode::server::NetcodeServer {
    use crate::proto::netcode::packet::{self, CHALLENGE_BODY_BYTES, Kind};
    use crate::proto::netcode::server::{NetcodeServer, Received, ServerConfig};
    use crate::proto::netcode::shared::Shared;
    use crate::proto::netcode::token::{TokenContents, seal_private};
    use crate::proto::netcode::{MAX_PACKET_BYTES, VERSION_INFO};

    const KEY: [u8; 32] = [7; 32];
    let server_address = "127.0.0.1:7000".parse().expect("an address");
    let client = GAME_SOURCES[0].parse().expect("an address");
    let config = ServerConfig {
        protocol_id: 1,
        private_key: KEY,
        public_addresses: vec![server_address],
        shared: std::sync::Arc::new(Shared::new(4)),
        challenge_key: [3; 32],
    };
    let mut server = NetcodeServer::new(config);
    let contents = TokenContents {
        protocol_id: 1,
        client_id: 1,
        create_timestamp: 1000,
        expire_timestamp: 2000,
        timeout_seconds: 5,
        server_addresses: &[server_address],
        client_to_server_key: CLIENT_TO_SERVER,
        server_to_client_key: SERVER_TO_CLIENT,
        user_data: &[0; 256],
    };
    let mut request = vec![0u8];
    request.extend_from_slice(VERSION_INFO);
    request.extend_from_slice(&1u64.to_le_bytes());
    request.extend_from_slice(&2000u64.to_le_bytes());
    request.extend_from_slice(&[5; 24]);
    request.extend_from_slice(&seal_private(&contents, &[5; 24], &KEY));
    let mut sent = Sent::default();
    server.receive(0, 1000, client, &mut request, &mut sent);
    let (_, mut challenge) = sent.0.pop().expect("a challenge");
    let header = packet::read_header(&challenge).expect("a header");
    let body = packet::open(&mut challenge, header, 1, &SERVER_TO_CLIENT).expect("sealed for the client").to_vec();
    let mut out = [0u8; MAX_PACKET_BYTES];
    let len = packet::seal(&mut out, Kind::Response, 0, 1, &CLIENT_TO_SERVER, |room| {
        room[..CHALLENGE_BODY_BYTES].copy_from_slice(&body);
        CHALLENGE_BODY_BYTES
    });
    let joined = server.receive(0, 1000, client, &mut out[..len], &mut sent);
    assert!(matches!(joined, Received::Joined { .. }), "the handshake completes");
    server
}

/// A netcode server with one client that completed the handshake, then `datagrams`: a piece
/// whose first byte is even is a payload the client seals and sends (so it reaches the channels
/// behind the decryption); an odd one is sent as it is, from one of four addresses (the
/// client's among them), as anyone could. Never a panic, and no datagram from anyone but the
/// genuine client is answered with more bytes than it carried. Returns the messages delivered.
#[cfg(feature = "game")]
pub fn game(datagrams: &[&[u8]]) -> usize {
    use crate::proto::channel::Channels;
    use crate::proto::netcode::MAX_PACKET_BYTES;
    use crate::proto::netcode::packet::{self, Kind};
    use crate::proto::netcode::server::Received;

    let addresses: [std::net::SocketAddr; 4] = GAME_SOURCES.map(|a| a.parse().expect("an address"));
    let mut server = server_with_a_client();
    let (mut channels, mut delivered, mut sequence) = (Channels::default(), 0, 1);
    let (mut sent, mut out) = (Sent::default(), [0u8; MAX_PACKET_BYTES]);
    for (turn, datagram) in datagrams.iter().enumerate() {
        let Some((&first, rest)) = datagram.split_first() else { continue };
        let now = turn as u64 * 10;
        sent.0.clear();
        let mut packet = if first % 2 == 0 && !rest.is_empty() {
            let payload = &rest[..rest.len().min(1200)];
            let len = packet::seal(&mut out, Kind::Payload, sequence, 1, &CLIENT_TO_SERVER, |room| {
                room[..payload.len()].copy_from_slice(payload);
                payload.len()
            });
            sequence += 1;
            out[..len].to_vec()
        } else {
            rest.to_vec()
        };
        let from = if first % 2 == 0 { addresses[0] } else { addresses[usize::from(first / 2) % 4] };
        let len = packet.len();
        if let Received::Payload { payload, .. } = server.receive(now, 1000 + now / 1000, from, &mut packet, &mut sent)
        {
            channels.receive(now, payload, |_, _| delivered += 1);
        }
        if from != addresses[0] {
            let answered: usize = sent.0.iter().map(|(_, p)| p.len()).sum();
            assert!(answered <= len, "{len} bytes from {from} answered with {answered}");
        }
        server.update(now, &mut sent, |_, _| {});
    }
    delivered
}
