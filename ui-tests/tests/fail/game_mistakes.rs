use smoke::prelude::*;

#[derive(Default)]
struct NoMessages;

// A game server needs a message handler: the one with a player and a channel.
#[smoke::server(game = 7000)]
impl NoMessages {
    #[on_join]
    fn join(&mut self, _player: &mut Player) {}
}

#[derive(Default)]
struct NoGame;

// Players exist only on a game listener.
#[smoke::server(udp = 7001)]
impl NoGame {
    #[on_datagram]
    fn datagram(&mut self, _peer: &mut Peer, _packet: &[u8]) {}

    #[on_leave]
    fn leave(&mut self, _player: &mut Player, _why: LeaveReason) {}
}

#[derive(Default)]
struct ChannelAsNumber;

#[smoke::server(game = 7002, max_clients = 0)]
impl ChannelAsNumber {
    #[on_message]
    fn message(&mut self, _player: &mut Player, _channel: u8, _message: &[u8]) {}
}

fn main() {}
