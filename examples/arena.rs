//! Arena: a small multiplayer game server. Players connect over secure UDP sessions (netcode
//! 1.02) with a connect token from `GET /token`; browsers watch the world drawn on a canvas at
//! `/`, fed over a WebSocket at `/watch`. Every worker steps its players at 20 Hz and sends the
//! whole world's state to every player and spectator on every worker. `arena_bot` joins N
//! players (renetcode's netcode client) and reports the states each received per second.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin arena
//! cargo run --release -p smoke-examples --bin arena_bot -- 127.0.0.1:9401 100 5
//! ```
//!
//! A player sends `move DX DY` (each -10..=10) on the unreliable channel; the server sends
//! `state TICK ID:X,Y;ID:X,Y;...` every 50 ms on the sequenced one (a late state is dropped,
//! never shown after a newer one). The key tokens are sealed with is `SMOKE_GAME_KEY`
//! (64 hex digits, shared with a backend that issues tokens); without it the arena draws one at
//! start, and only its own `/token` route can issue tokens for it.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use smoke::game::TokenIssuer;
use smoke::prelude::*;
use smoke_examples::query_value;

/// The side of the square world.
const WORLD_SIZE: i32 = 1000;
/// The game's protocol id: a token for another game is refused.
const PROTOCOL: u64 = 0xa2e4a;
const PAGE: &str = include_str!("arena.html");

/// Each worker's players as of its last tick, (id, x, y), by worker index. Workers own their
/// players; at each tick a worker publishes its own and reads everyone's, one lock per tick.
static WORLD: Mutex<Vec<Vec<(u64, i32, i32)>>> = Mutex::new(Vec::new());
/// The key tokens are sealed with, and the game socket as bound.
static GAME: OnceLock<([u8; 32], SocketAddr)> = OnceLock::new();
static NEXT_PLAYER: AtomicU64 = AtomicU64::new(1);

/// A player's state on the server (the game's own: `Player` is smoke's handle to the session).
#[derive(Default)]
struct Pilot {
    id: u64,
    x: i32,
    y: i32,
}

impl Pilot {
    /// Applies `move DX DY`; anything else is ignored (a game would count it against the
    /// player).
    fn input(&mut self, text: &str) {
        let mut words = text.split_ascii_whitespace();
        if words.next() != Some("move") {
            return;
        }
        let mut step = || words.next().and_then(|w| w.parse::<i32>().ok()).map_or(0, |d| d.clamp(-10, 10));
        let (dx, dy) = (step(), step());
        self.x = (self.x + dx).clamp(0, WORLD_SIZE);
        self.y = (self.y + dy).clamp(0, WORLD_SIZE);
    }
}

/// Where a token tells the client to send: the game socket, at the address the client reached
/// this server's page on when the socket is bound to every address.
fn game_address(req: &Request, bound: SocketAddr) -> SocketAddr {
    if !bound.ip().is_unspecified() {
        return bound;
    }
    let host = req.header_str("host").and_then(|host| host.rsplit_once(':').map_or(Some(host), |(ip, _)| Some(ip)));
    let ip = host.and_then(|ip| ip.trim_matches(['[', ']']).parse::<IpAddr>().ok());
    SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), bound.port())
}

// ANCHOR: arena
#[smoke::server(game = 9400, http = 9401, ws_path = "/watch", game_protocol = 0xa2e4a, threads = 2)]
impl Pilot {
    #[get("/")]
    fn page(&mut self, _req: &Request, res: &mut Response) {
        res.html(PAGE);
    }

    /// A token for a new player, in the netcode standard's layout (or renetcode's, with
    /// `?layout=renetcode`). A real game authenticates the player first.
    #[get("/token")]
    fn token(&mut self, req: &Request, res: &mut Response) {
        let Some(&(key, bound)) = GAME.get() else {
            res.status(503).text("starting");
            return;
        };
        let issuer = TokenIssuer::new(PROTOCOL, key, vec![game_address(req, bound)]).expect("one address");
        let name = query_value(req.query(), "name").unwrap_or("player");
        match issuer.issue(NEXT_PLAYER.fetch_add(1, Ordering::Relaxed), name.as_bytes()) {
            Ok(token) if query_value(req.query(), "layout") == Some("renetcode") => {
                res.body(token.to_renetcode_bytes())
            }
            Ok(token) => res.body(token.to_bytes()),
            Err(e) => res.status(500).text(&e.to_string()),
        };
    }

    #[on_join]
    fn join(&mut self, player: &mut Player) {
        self.id = player.client_id();
        // Spread over the world, so players start apart.
        self.x = 100 + (self.id * 137 % 800) as i32;
        self.y = 100 + (self.id * 251 % 800) as i32;
    }

    #[on_message]
    fn input_message(&mut self, _player: &mut Player, _channel: Channel, message: &[u8]) {
        self.input(std::str::from_utf8(message).unwrap_or(""));
    }

    /// Spectators only watch: what they send is ignored.
    #[on_message]
    fn spectator_message(&mut self, _ws: &mut WsConn, _message: Message) {}

    #[on_tick(ms = 50)]
    fn step(worker: &mut Worker<Self>) {
        let mut mine = Vec::new();
        worker.for_each_player(|player, _| mine.push((player.id, player.x, player.y)));
        let mut state = format!("state {}", worker.tick().sequence);
        {
            let mut world = WORLD.lock().unwrap_or_else(|e| e.into_inner());
            if world.len() <= worker.index() {
                world.resize_with(worker.index() + 1, Vec::new);
            }
            world[worker.index()] = mine;
            for (i, (id, x, y)) in world.iter().flatten().enumerate() {
                let _ = write!(state, "{}{id}:{x},{y}", if i == 0 { " " } else { ";" });
            }
        }
        // Sequenced: a player whose packets arrive out of order never sees the world go back.
        worker.broadcast(Channel::Sequenced, state.as_bytes());
        worker.for_each_websocket(|_, ws| {
            // A browser that falls behind misses states rather than queueing them.
            let _ = ws.send_text(&state);
        });
    }
}
// ANCHOR_END: arena

fn main() -> Result<(), Box<dyn std::error::Error>> {
    smoke_examples::init_logging();
    let from_env = std::env::var("SMOKE_GAME_KEY").ok().and_then(|hex| smoke::game::key_from_hex(hex.trim()));
    let key = match from_env {
        Some(key) => key,
        None => smoke::game::random_key()?,
    };
    Pilot::serve_with(Pilot::config().game_key(key), |server| {
        let game = server.local_addrs().iter().find(|(protocol, _)| *protocol == smoke::Protocol::Game);
        let _ = GAME.set((key, game.expect("the arena has a game listener").1));
    })?;
    Ok(())
}
