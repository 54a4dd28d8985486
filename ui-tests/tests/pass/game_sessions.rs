//! A secure game server: join, messages with their channel, leave, and a tick that broadcasts.
use smoke::prelude::*;

#[derive(Default)]
struct Pilot {
    x: i32,
}

#[smoke::server(game = 7000, game_protocol = 0x5eed, max_clients = 64, http = 8080)]
impl Pilot {
    #[on_join]
    fn join(&mut self, player: &mut Player) {
        let _ = player.send(Channel::ReliableOrdered, player.user_data().to_vec().as_slice());
    }

    #[on_message]
    fn input(&mut self, player: &mut Player, channel: Channel, message: &[u8]) {
        self.x += message.len() as i32;
        if channel == Channel::ReliableOrdered {
            let _ = player.send(channel, b"ack");
        }
    }

    #[on_leave]
    fn leave(&mut self, _player: &mut Player, why: LeaveReason) {
        let _ = why == LeaveReason::TimedOut;
    }

    #[get("/token")]
    fn token(&mut self, _req: &Request, res: &mut Response) {
        let issuer = smoke::game::TokenIssuer::new(0x5eed, [7; 32], vec!["127.0.0.1:7000".parse().unwrap()]);
        res.body(issuer.unwrap().issue(1, b"pilot").unwrap().to_bytes());
    }

    #[on_tick(ms = 50)]
    fn step(worker: &mut Worker<Self>) {
        worker.for_each_player(|pilot, player| {
            let _ = player.send(Channel::Sequenced, &pilot.x.to_le_bytes());
        });
        worker.broadcast(Channel::Unreliable, b"frame");
    }
}

fn main() {
    let config = Pilot::config();
    assert_eq!(config.listeners()[0].0, smoke::Protocol::Game);
}
