//! Secure game sessions end to end: renetcode's netcode client, over real UDP on loopback, with
//! smoke's channels on its payloads, against a `#[smoke::server(game = ..)]`.

mod common;

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use common::eventually;
use common::game::GameClient;
use renetcode::DisconnectReason;
use smoke::game::{MAX_MESSAGE_BYTES, TokenIssuer};
use smoke::prelude::*;

const KEY: [u8; 32] = *b"the arena's 32-byte private key!";
const PROTOCOL: u64 = 0x5eed;

/// (client id, why) of every session that ended.
static LEAVES: Mutex<Vec<(u64, LeaveReason)>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Arena {
    name: String,
}

#[smoke::server(game = 7100, game_protocol = 0x5eed, max_clients = 3, threads = 2)]
impl Arena {
    #[on_join]
    fn join(&mut self, player: &mut Player) {
        let name = player.user_data().split(|&b| b == 0).next().unwrap_or_default();
        self.name = String::from_utf8_lossy(name).into_owned();
        player.send(Channel::ReliableOrdered, format!("welcome {}", self.name).as_bytes()).unwrap();
    }

    #[on_message]
    fn message(&mut self, player: &mut Player, channel: Channel, message: &[u8]) {
        match message {
            b"kick me" => player.kick(),
            b"rtt" => {
                let stats = player.stats();
                player.send(channel, format!("{}", stats.rtt.as_micros()).as_bytes()).unwrap();
            }
            _ => player.send(channel, message).unwrap(),
        }
    }

    #[on_leave]
    fn leave(&mut self, player: &mut Player, why: LeaveReason) {
        LEAVES.lock().unwrap().push((player.client_id(), why));
    }

    #[on_tick(ms = 50)]
    fn tick(worker: &mut Worker<Self>) {
        let sequence = worker.tick().sequence;
        worker.broadcast(Channel::Sequenced, format!("tick {sequence}").as_bytes());
    }
}

fn start(config: Config) -> (ServerHandle, SocketAddr) {
    let server = Arena::spawn(common::on_loopback(config.game_key(KEY), "game")).expect("server starts");
    let addr = server.local_addrs().iter().find(|(p, _)| *p == smoke::Protocol::Game).unwrap().1;
    (server, addr)
}

fn client(server: SocketAddr, id: u64, name: &str) -> GameClient {
    let issuer = TokenIssuer::new(PROTOCOL, KEY, vec![server]).unwrap();
    GameClient::new(&issuer.issue(id, name.as_bytes()).unwrap().to_renetcode_bytes(), "127.0.0.1:0")
}

fn left(id: u64) -> Option<LeaveReason> {
    LEAVES.lock().unwrap().iter().find(|(who, _)| *who == id).map(|&(_, why)| why)
}

#[test]
fn a_renetcode_client_joins_and_messages_cross_on_every_channel() {
    let (server, addr) = start(Arena::config());
    let mut player = client(addr, 1, "ada");
    player.connect();
    assert!(player.pump_until(Duration::from_secs(5), |c| !c.on(Channel::ReliableOrdered).is_empty()));
    assert_eq!(player.on(Channel::ReliableOrdered)[0], b"welcome ada", "on_join saw the token's user data");

    for channel in Channel::ALL {
        player.send(channel, format!("hello on {channel:?}").as_bytes());
    }
    let large: Vec<u8> = (0..MAX_MESSAGE_BYTES).map(|i| (i % 251) as u8).collect();
    player.send(Channel::ReliableUnordered, &large);
    let echoed = |c: &GameClient, channel: Channel, message: &[u8]| c.on(channel).iter().any(|m| m == message);
    assert!(player.pump_until(Duration::from_secs(10), |c| {
        Channel::ALL.iter().all(|&ch| echoed(c, ch, format!("hello on {ch:?}").as_bytes()))
            && echoed(c, Channel::ReliableUnordered, &large)
    }));
    assert!(player.pump_until(Duration::from_secs(5), |c| c.on(Channel::Sequenced).len() >= 5), "the tick's broadcast");
    let ticks: Vec<u64> = player
        .on(Channel::Sequenced)
        .iter()
        .filter_map(|m| std::str::from_utf8(m).ok()?.strip_prefix("tick ")?.parse().ok())
        .collect();
    assert!(ticks.windows(2).all(|pair| pair[0] < pair[1]), "sequenced ticks in order: {ticks:?}");

    let stats = server.stats();
    assert_eq!(stats.players, 1);
    assert!(stats.game_messages >= 5);
    assert_eq!((stats.game_forged, stats.game_replayed), (0, 0));

    player.disconnect();
    assert!(eventually(Duration::from_secs(5), || left(1) == Some(LeaveReason::Disconnected)));
    assert!(eventually(Duration::from_secs(5), || server.stats().players == 0));
    server.shutdown().unwrap();
}

#[test]
fn a_token_sealed_with_another_key_gets_no_answer_and_is_counted() {
    let (server, addr) = start(Arena::config());
    let issuer = TokenIssuer::new(PROTOCOL, [0x42; 32], vec![addr]).unwrap();
    let mut stranger = GameClient::new(&issuer.issue(2, b"eve").unwrap().to_renetcode_bytes(), "127.0.0.1:0");
    assert!(!stranger.pump_until(Duration::from_millis(800), |c| c.netcode.is_connected()));
    assert!(stranger.received.is_empty());
    assert!(server.stats().game_requests_ignored >= 1);
    let other_game = TokenIssuer::new(PROTOCOL + 1, KEY, vec![addr]).unwrap();
    let mut lost = GameClient::new(&other_game.issue(3, b"bob").unwrap().to_renetcode_bytes(), "127.0.0.1:0");
    assert!(!lost.pump_until(Duration::from_millis(800), |c| c.netcode.is_connected()), "another protocol id");
    assert_eq!(server.stats().players, 0);
    server.shutdown().unwrap();
}

#[test]
fn max_clients_holds_across_workers_and_the_next_is_denied() {
    let (server, addr) = start(Arena::config());
    let mut players: Vec<GameClient> = (10..13).map(|id| client(addr, id, "p")).collect();
    for player in &mut players {
        player.connect();
    }
    let mut fourth = client(addr, 13, "late");
    assert!(fourth.pump_until(Duration::from_secs(5), |c| c.netcode.is_disconnected()));
    assert_eq!(fourth.reason(), Some(DisconnectReason::ConnectionDenied));
    assert_eq!(server.stats().players, 3);
    assert!(server.stats().game_denied >= 1);

    // A seat freed is a seat taken again.
    players[0].disconnect();
    assert!(eventually(Duration::from_secs(5), || server.stats().players == 2));
    let mut fifth = client(addr, 14, "next");
    fifth.connect();
    server.shutdown().unwrap();
}

#[test]
fn kicked_and_shut_down_players_are_told_and_leave_once() {
    let (server, addr) = start(Arena::config());
    let mut kicked = client(addr, 20, "k");
    kicked.connect();
    kicked.send(Channel::ReliableOrdered, b"kick me");
    assert!(kicked.pump_until(Duration::from_secs(5), |c| c.netcode.is_disconnected()));
    assert_eq!(kicked.reason(), Some(DisconnectReason::DisconnectedByServer));
    assert!(eventually(Duration::from_secs(5), || left(20) == Some(LeaveReason::Kicked)));

    let mut staying = client(addr, 21, "s");
    staying.connect();
    server.shutdown().unwrap();
    assert!(staying.pump_until(Duration::from_secs(5), |c| c.netcode.is_disconnected()));
    assert_eq!(staying.reason(), Some(DisconnectReason::DisconnectedByServer));
    assert_eq!(left(21), Some(LeaveReason::Shutdown));
    assert_eq!(LEAVES.lock().unwrap().iter().filter(|(id, _)| *id == 20).count(), 1, "once");
}

#[test]
fn a_silent_client_times_out() {
    let (server, addr) = start(Arena::config());
    let issuer = TokenIssuer::new(PROTOCOL, KEY, vec![addr]).unwrap().session_timeout(Some(Duration::from_secs(1)));
    let mut quiet = GameClient::new(&issuer.issue(30, b"q").unwrap().to_renetcode_bytes(), "127.0.0.1:0");
    quiet.connect();
    // The client stops pumping: nothing more leaves it.
    assert!(eventually(Duration::from_secs(5), || left(30) == Some(LeaveReason::TimedOut)));
    assert_eq!(server.stats().players, 0);
    server.shutdown().unwrap();
}

#[test]
fn a_game_listener_without_a_key_does_not_start() {
    let error = Arena::spawn(common::on_loopback(Arena::config(), "game")).expect_err("refused");
    assert!(error.to_string().contains("SMOKE_GAME_KEY"), "{error}");
}
