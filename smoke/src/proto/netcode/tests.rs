//! The server machine against renetcode's client, a netcode 1.02 implementation nobody here
//! wrote, both driven in memory: what one sends is handed to the other.

use super::packet::{self, Kind, REQUEST_BYTES};
use super::server::{NetcodeServer, Received, ServerConfig, Transmit};
use super::token::{self, TokenContents};
use super::{Key, USER_DATA_BYTES};
use renetcode::{ClientAuthentication, ConnectToken, DisconnectReason, NetcodeClient};
use std::net::SocketAddr;
use std::time::Duration;

const PROTOCOL: u64 = 0x5eed_0001;
const PRIVATE_KEY: Key = *b"a private key of 32 bytes ......";
const NOW_UNIX: u64 = 1_800_000_000;

fn server_address() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn server(max_clients: u32) -> NetcodeServer {
    NetcodeServer::new(config(max_clients))
}

/// Why the server said a session ended.
#[derive(Debug, PartialEq, Eq)]
enum LeaveReason {
    Disconnected,
    TimedOut,
}

/// Packets the server sent, with where to.
#[derive(Default)]
struct Sent(Vec<(SocketAddr, Vec<u8>)>);

impl Transmit for Sent {
    fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        self.0.push((to, packet.to_vec()));
    }
}

/// A token as smoke's backend issues it, in renetcode's layout, read by renetcode.
fn smoke_token(client_id: u64, addresses: &[SocketAddr], timeout_seconds: i32) -> ConnectToken {
    let user_data = [client_id as u8; USER_DATA_BYTES];
    let contents = TokenContents {
        protocol_id: PROTOCOL,
        client_id,
        create_timestamp: NOW_UNIX,
        expire_timestamp: NOW_UNIX + 30,
        timeout_seconds,
        server_addresses: addresses,
        client_to_server_key: [client_id as u8 ^ 0x11; 32],
        server_to_client_key: [client_id as u8 ^ 0x22; 32],
        user_data: &user_data,
    };
    let nonce = [client_id as u8; 24];
    let private = token::seal_private(&contents, &nonce, &PRIVATE_KEY);
    let bytes = token::write_public(&contents, &nonce, &private, true);
    ConnectToken::read(&mut &bytes[..]).expect("renetcode reads smoke's token")
}

/// One renetcode client at `address` and the server, stepping time 50 ms at a turn.
struct Pair {
    server: NetcodeServer,
    client: NetcodeClient,
    address: SocketAddr,
    now: u64,
    unix_seconds: u64,
    joined: Vec<u32>,
    payloads: Vec<Vec<u8>>,
    left: Vec<LeaveReason>,
    to_client: Vec<Vec<u8>>,
}

impl Pair {
    fn new(server: NetcodeServer, token: ConnectToken, address: &str) -> Pair {
        let client =
            NetcodeClient::new(Duration::from_secs(NOW_UNIX), ClientAuthentication::Secure { connect_token: token })
                .unwrap();
        Pair {
            server,
            client,
            address: address.parse().unwrap(),
            now: 1_000,
            unix_seconds: NOW_UNIX,
            joined: vec![],
            payloads: vec![],
            left: vec![],
            to_client: vec![],
        }
    }

    fn deliver_to_server(&mut self, mut packet: Vec<u8>) -> Sent {
        let mut sent = Sent::default();
        match self.server.receive(self.now, self.unix_seconds, self.address, &mut packet, &mut sent) {
            Received::Joined { slot } => self.joined.push(slot),
            Received::Payload { payload, .. } => self.payloads.push(payload.to_vec()),
            Received::Left { .. } => self.left.push(LeaveReason::Disconnected),
            Received::Nothing => {}
        }
        sent
    }

    fn deliver_to_client(&mut self, sent: Sent) {
        // Keep-alives for other sessions on a shared server are not this client's.
        for (_, mut packet) in sent.0.into_iter().filter(|(to, _)| *to == self.address) {
            self.to_client.push(packet.clone());
            self.client.process_packet(&mut packet);
        }
    }

    /// One 50 ms turn: the client's due packet to the server, the server's answers back.
    fn turn(&mut self) {
        self.now += 50;
        let server_address = self.client.server_addr();
        if let Some((packet, to)) = self.client.update(Duration::from_millis(50)) {
            assert_eq!(to, server_address);
            let packet = packet.to_vec();
            let sent = self.deliver_to_server(packet);
            self.deliver_to_client(sent);
        }
        let mut sent = Sent::default();
        let left = &mut self.left;
        self.server.update(self.now, &mut sent, |_, _| left.push(LeaveReason::TimedOut));
        self.deliver_to_client(sent);
    }

    fn connect(&mut self) {
        for _ in 0..40 {
            self.turn();
            if self.client.is_connected() {
                return;
            }
        }
        panic!("no connection: {:?}, {:?}", self.client.disconnect_reason(), self.server.counters());
    }
}

#[test]
fn a_renetcode_client_connects_and_payloads_cross_both_ways() {
    let mut pair = Pair::new(server(8), smoke_token(7, &[server_address()], 5), "127.0.0.1:50001");
    pair.connect();
    assert_eq!(pair.joined.len(), 1);
    let slot = pair.joined[0];
    let session = pair.server.session(slot).unwrap();
    assert_eq!((session.client_id, session.address), (7, pair.address));
    assert_eq!(session.user_data, [7; USER_DATA_BYTES], "the token's user data reaches the server");

    let (_, packet) = pair.client.generate_payload_packet(b"move left").unwrap();
    let packet = packet.to_vec();
    pair.deliver_to_server(packet);
    assert_eq!(pair.payloads, vec![b"move left".to_vec()]);

    let mut sent = Sent::default();
    assert!(pair.server.send_payload(pair.now, slot, b"world state", &mut sent));
    let (_, mut packet) = sent.0.pop().unwrap();
    assert_eq!(pair.client.process_packet(&mut packet), Some(&b"world state"[..]));
    assert_eq!(pair.server.counters().forged + pair.server.counters().replayed, 0);
}

#[test]
fn sessions_stay_up_on_keep_alives_and_end_on_the_clients_disconnect() {
    let mut pair = Pair::new(server(8), smoke_token(8, &[server_address()], 2), "127.0.0.1:50002");
    pair.connect();
    // Ten seconds of nothing but keep-alives, five times the timeout.
    for _ in 0..200 {
        pair.turn();
    }
    assert!(pair.client.is_connected());
    assert_eq!(pair.server.connected(), 1);
    assert!(pair.left.is_empty());
    let (_, packet) = pair.client.disconnect().unwrap();
    let packet = packet.to_vec();
    pair.deliver_to_server(packet);
    assert_eq!(pair.left, vec![LeaveReason::Disconnected]);
    assert_eq!(pair.server.connected(), 0);
}

#[test]
fn a_silent_client_times_out_and_a_kicked_one_is_told() {
    let mut pair = Pair::new(server(8), smoke_token(9, &[server_address()], 1), "127.0.0.1:50003");
    pair.connect();
    let mut sent = Sent::default();
    let mut timed_out = vec![];
    pair.server.update(pair.now + 900, &mut sent, |slot, _| timed_out.push(slot));
    assert!(timed_out.is_empty(), "inside the timeout");
    pair.server.update(pair.now + 1_100, &mut sent, |slot, _| timed_out.push(slot));
    assert_eq!(timed_out, pair.joined);
    assert_eq!(pair.server.counters().timed_out, 1);

    let mut pair = Pair::new(server(8), smoke_token(10, &[server_address()], 5), "127.0.0.1:50004");
    pair.connect();
    let mut sent = Sent::default();
    let kicked = pair.server.kick(pair.now, pair.joined[0], &mut sent).unwrap();
    assert_eq!(kicked.client_id, 10);
    assert_eq!(sent.0.len(), 10, "redundant disconnect packets");
    pair.deliver_to_client(sent);
    assert_eq!(pair.client.disconnect_reason(), Some(DisconnectReason::DisconnectedByServer));
}

#[test]
fn a_full_server_denies_and_the_client_says_so() {
    let mut first = Pair::new(server(1), smoke_token(11, &[server_address()], 5), "127.0.0.1:50005");
    first.connect();
    let mut second = Pair::new(
        std::mem::replace(&mut first.server, server(1)),
        smoke_token(12, &[server_address()], 5),
        "127.0.0.1:50006",
    );
    for _ in 0..10 {
        second.turn();
    }
    assert_eq!(second.client.disconnect_reason(), Some(DisconnectReason::ConnectionDenied));
    assert_eq!(second.server.counters().denied, 1);
    assert_eq!(second.server.connected(), 1);
}

#[test]
fn a_token_from_renetcodes_own_backend_is_accepted_over_ipv6() {
    // renetcode writes an IPv6 address as octets, where the standard has little-endian u16s.
    let address: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
    let token =
        ConnectToken::generate(Duration::from_secs(NOW_UNIX), PROTOCOL, 30, 13, 5, vec![address], None, &PRIVATE_KEY)
            .unwrap();
    let server = NetcodeServer::new(ServerConfig { public_addresses: vec![address], ..config(4) });
    let mut pair = Pair::new(server, token, "[2001:db8::2]:5000");
    pair.connect();
    assert_eq!(pair.server.session(pair.joined[0]).unwrap().client_id, 13);
}

#[test]
fn forged_replayed_and_wrong_key_packets_are_dropped_and_counted() {
    let mut pair = Pair::new(server(8), smoke_token(14, &[server_address()], 5), "127.0.0.1:50007");
    pair.connect();
    let (_, packet) = pair.client.generate_payload_packet(b"once").unwrap();
    let packet = packet.to_vec();
    pair.deliver_to_server(packet.clone());
    pair.deliver_to_server(packet.clone());
    assert_eq!(pair.payloads.len(), 1, "the replayed copy is not delivered");
    assert_eq!(pair.server.counters().replayed, 1);

    let (_, packet) = pair.client.generate_payload_packet(b"altered").unwrap();
    let mut altered = packet.to_vec();
    let last = altered.len() - 1;
    altered[last] ^= 0x80;
    pair.deliver_to_server(altered);
    assert_eq!(pair.server.counters().forged, 1);
    // The forged packet did not advance the window: the genuine one with its sequence still
    // gets through.
    let (_, packet) = pair.client.generate_payload_packet(b"after").unwrap();
    let packet = packet.to_vec();
    pair.deliver_to_server(packet);
    assert_eq!(pair.payloads, vec![b"once".to_vec(), b"after".to_vec()]);

    // A token sealed with another backend's key: ignored, nothing answered.
    let mut stranger = smoke_token(15, &[server_address()], 5);
    stranger.private_data = {
        let user_data = [0; USER_DATA_BYTES];
        let contents = TokenContents {
            protocol_id: PROTOCOL,
            client_id: 15,
            create_timestamp: NOW_UNIX,
            expire_timestamp: stranger.expire_timestamp,
            timeout_seconds: 5,
            server_addresses: &[server_address()],
            client_to_server_key: [1; 32],
            server_to_client_key: [2; 32],
            user_data: &user_data,
        };
        token::seal_private(&contents, &stranger.xnonce, &[0xee; 32])
    };
    let mut other = Pair::new(std::mem::replace(&mut pair.server, server(1)), stranger, "127.0.0.1:50008");
    for _ in 0..5 {
        other.turn();
    }
    assert!(!other.client.is_connected());
    assert!(other.to_client.is_empty());
    assert!(other.server.counters().requests_ignored >= 1);
}

/// Requests from spoofed sources: garbage, a token altered in flight, and one genuine token
/// replayed from many addresses. Nothing is kept for any of them but the genuine token's one
/// handshake, and nothing is answered but its one challenge, smaller than the request.
#[test]
fn a_flood_of_spoofed_requests_allocates_nothing_and_amplifies_nothing() {
    let mut server = server(64);
    let genuine = smoke_token(16, &[server_address()], 5);
    let mut request = vec![0u8; REQUEST_BYTES];
    request[1..14].copy_from_slice(super::VERSION_INFO);
    request[14..22].copy_from_slice(&PROTOCOL.to_le_bytes());
    request[22..30].copy_from_slice(&genuine.expire_timestamp.to_le_bytes());
    request[30..54].copy_from_slice(&genuine.xnonce);
    request[54..].copy_from_slice(&genuine.private_data);
    let mut sent = Sent::default();
    for i in 0..10_000u32 {
        let from = SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 1024 + (i % 60_000) as u16));
        let mut packet = request.clone();
        match i % 4 {
            0 => packet[100 + (i as usize % 900)] ^= 1,
            1 => packet.truncate(1 + (i as usize % 1077)),
            2 => packet[22] ^= 1,
            _ => {}
        }
        assert_eq!(server.receive(1_000, NOW_UNIX, from, &mut packet, &mut sent), Received::Nothing);
    }
    assert_eq!(server.connected(), 0);
    assert_eq!(sent.0.len(), 1, "only the first address to present the genuine token is answered");
    assert!(sent.0[0].1.len() < REQUEST_BYTES / 3, "a challenge of {} bytes", sent.0[0].1.len());
    assert_eq!(packet::read_header(&sent.0[0].1).unwrap().kind, Kind::Challenge);
    assert_eq!(server.counters().requests_ignored, 9_999);
    // Encrypted packets from sources with no handshake: counted, never answered.
    for i in 0..1_000u16 {
        let mut packet = vec![0x15; 40];
        let from = SocketAddr::from(([10, 9, 9, 9], 1024 + i));
        server.receive(1_000, NOW_UNIX, from, &mut packet, &mut sent);
    }
    assert_eq!(sent.0.len(), 1);
    assert_eq!(server.counters().unknown_source, 1_000);
}

/// The connection request renetcode's client sends for `token`.
fn request_of(token: ConnectToken) -> Vec<u8> {
    let mut client =
        NetcodeClient::new(Duration::from_secs(NOW_UNIX), ClientAuthentication::Secure { connect_token: token })
            .unwrap();
    let (packet, _) = client.update(Duration::ZERO).unwrap();
    assert_eq!(packet.len(), REQUEST_BYTES);
    packet.to_vec()
}

#[test]
fn expired_tokens_other_protocols_and_other_servers_are_ignored() {
    let from: SocketAddr = "127.0.0.1:50009".parse().unwrap();
    let mut sent = Sent::default();
    let token = smoke_token(17, &[server_address()], 5);
    let expire_timestamp = token.expire_timestamp;
    let request = request_of(token);

    let mut server = server(4);
    server.receive(1_000, expire_timestamp, from, &mut request.clone(), &mut sent);
    assert_eq!((sent.0.len(), server.counters().requests_ignored), (0, 1), "expired by the server's clock");
    let mut other_protocol = request.clone();
    other_protocol[14] ^= 1;
    server.receive(1_000, NOW_UNIX, from, &mut other_protocol, &mut sent);
    let mut other_protocol_server = NetcodeServer::new(ServerConfig { protocol_id: PROTOCOL ^ 1, ..config(4) });
    other_protocol_server.receive(1_000, NOW_UNIX, from, &mut other_protocol, &mut sent);
    assert_eq!(sent.0.len(), 0, "the protocol id is sealed into the token");
    let mut later = request.clone();
    later[22] ^= 1;
    server.receive(1_000, NOW_UNIX, from, &mut later, &mut sent);
    assert_eq!((sent.0.len(), server.counters().requests_ignored), (0, 3), "the expiry is sealed too");

    let mut elsewhere = request_of(smoke_token(18, &["127.0.0.1:40001".parse().unwrap()], 5));
    server.receive(1_000, NOW_UNIX, from, &mut elsewhere, &mut sent);
    assert_eq!((sent.0.len(), server.counters().requests_ignored), (0, 4), "a token for another server");

    server.receive(1_000, NOW_UNIX, from, &mut request.clone(), &mut sent);
    assert_eq!(sent.0.len(), 1, "the genuine request is answered");
}

fn config(max_clients: u32) -> ServerConfig {
    ServerConfig {
        protocol_id: PROTOCOL,
        private_key: PRIVATE_KEY,
        public_addresses: vec![server_address()],
        shared: std::sync::Arc::new(super::shared::Shared::new(max_clients)),
        challenge_key: [9; 32],
    }
}

/// Two workers' machines share one `Shared`, as a server's do. A request copied and sent from
/// another address, reaching the other worker, is ignored there: that worker would otherwise
/// seal under the same keys with the same sequence numbers (found in review). And a client id
/// connected on one worker is not connected again on the other.
#[test]
fn the_workers_machines_share_tokens_and_client_ids() {
    let shared = std::sync::Arc::new(super::shared::Shared::new(8));
    let machine = || NetcodeServer::new(ServerConfig { shared: shared.clone(), ..config(8) });
    let (mut first, mut second) = (machine(), machine());
    let request = request_of(smoke_token(22, &[server_address()], 5));
    let (mut sent_first, mut sent_second) = (Sent::default(), Sent::default());
    first.receive(1_000, NOW_UNIX, "127.0.0.1:50012".parse().unwrap(), &mut request.clone(), &mut sent_first);
    second.receive(1_000, NOW_UNIX, "127.0.0.1:50013".parse().unwrap(), &mut request.clone(), &mut sent_second);
    assert_eq!((sent_first.0.len(), sent_second.0.len()), (1, 0), "one challenge, from the first worker");
    assert_eq!(second.counters().requests_ignored, 1);

    let mut pair = Pair::new(first, smoke_token(23, &[server_address()], 5), "127.0.0.1:50014");
    pair.connect();
    let again = request_of(smoke_token(23, &[server_address()], 5));
    let mut sent = Sent::default();
    second.receive(1_000, NOW_UNIX, "127.0.0.1:50015".parse().unwrap(), &mut again.clone(), &mut sent);
    assert!(sent.0.is_empty(), "client 23 is connected on the other worker");
}

/// A token makes one session: after it ends, the captured request (and response) replayed from
/// the same address start nothing, where the standard alone would let a blind spoofer bring the
/// session back with an empty replay window (found in review).
#[test]
fn a_token_that_made_a_session_makes_no_other() {
    let token = smoke_token(24, &[server_address()], 5);
    let request = request_of(token.clone());
    let mut pair = Pair::new(server(4), token, "127.0.0.1:50016");
    pair.connect();
    let (_, packet) = pair.client.disconnect().unwrap();
    let packet = packet.to_vec();
    pair.deliver_to_server(packet);
    assert_eq!(pair.server.connected(), 0);
    let mut sent = Sent::default();
    pair.server.receive(pair.now, NOW_UNIX, pair.address, &mut request.clone(), &mut sent);
    assert!(sent.0.is_empty(), "no challenge for a used-up token");
}
