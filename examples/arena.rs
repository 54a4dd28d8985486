//! Arena: a small multiplayer game server. Players send input over UDP (or WebSocket, for
//! browser players); every worker steps its players at 20 Hz and broadcasts the whole world's
//! state to all players on all workers. `arena_bot` joins N players and reports state rates.
//!
//! ```text
//! cargo run --release -p smoke-examples --bin arena
//! cargo run --release -p smoke-examples --bin arena_bot -- 127.0.0.1:9400 100 5
//! ```
//!
//! The protocol, text over either transport: the client sends `move DX DY` (each -10..=10);
//! the server sends `state TICK ID:X,Y;ID:X,Y;...` every 50 ms. A UDP player joins with its
//! first datagram and leaves after 10 s of silence.

use std::fmt::Write;
use std::sync::Mutex;

use smoke::prelude::*;

/// The side of the square world.
const WORLD_SIZE: i32 = 1000;

/// Each worker's players as of its last tick, (id, x, y), by worker index. Workers own their
/// players; at each tick a worker publishes its own and reads everyone's, one lock per tick.
static WORLD: Mutex<Vec<Vec<(u64, i32, i32)>>> = Mutex::new(Vec::new());

#[derive(Default)]
struct Player {
    id: u64,
    x: i32,
    y: i32,
}

impl Player {
    /// Applies `move DX DY`; anything else is ignored (a game would count it against the
    /// player).
    fn input(&mut self, id: u64, text: &str) {
        self.id = id;
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

// ANCHOR: arena
#[smoke::server(udp = 9400, http = 9401, ws_path = "/play", threads = 2, udp_idle_timeout_ms = 10000)]
impl Player {
    #[on_datagram]
    fn datagram(&mut self, peer: &mut Peer, packet: &[u8]) {
        self.input(peer.id().as_u64(), std::str::from_utf8(packet).unwrap_or(""));
    }

    #[on_open]
    fn open(&mut self, ws: &mut WsConn) {
        self.id = ws.id().as_u64();
    }

    #[on_message]
    fn message(&mut self, ws: &mut WsConn, message: Message) {
        if let Message::Text(text) = message {
            self.input(ws.id().as_u64(), text);
        }
    }

    #[on_tick(ms = 50)]
    fn step(worker: &mut Worker<Self>) {
        let mut mine = Vec::with_capacity(worker.peers() + worker.connections());
        worker.for_each_peer(|player, _| mine.push((player.id, player.x, player.y)));
        worker.for_each_websocket(|player, _| mine.push((player.id, player.x, player.y)));
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
        worker.for_each_peer(|_, peer| peer.send(state.as_bytes()));
        worker.for_each_websocket(|_, ws| {
            // A browser that falls behind misses states rather than queueing them.
            let _ = ws.send_text(&state);
        });
    }
}
// ANCHOR_END: arena

fn main() -> Result<(), smoke::Error> {
    smoke_examples::init_logging();
    Player::serve()
}
