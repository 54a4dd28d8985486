//! smoke's game echo server for the benchmarks: `smoke_game_echo PORT`. Secure sessions on
//! 127.0.0.1:PORT, one worker; every message goes back to its player on the channel it came on.
use smoke::prelude::*;

#[path = "../game.rs"]
mod game;

#[derive(Default)]
struct Echo;

#[smoke::server(game = 7000, game_protocol = 0xbe7c4, threads = 1, max_clients = 4096)]
impl Echo {
    #[on_message]
    fn message(&mut self, player: &mut Player, channel: Channel, message: &[u8]) {
        let _ = player.send(channel, message);
    }
}

fn main() {
    let port = std::env::args().nth(1).expect("usage: smoke_game_echo PORT");
    let listen = format!("127.0.0.1:{port}");
    let config =
        Echo::config().game_key(game::KEY).apply_overrides(|name| (name == "SMOKE_GAME").then(|| listen.clone()));
    Echo::spawn(config.unwrap()).unwrap().wait_for_signal().unwrap();
}
