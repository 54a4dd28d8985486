//! What the game benchmark's servers and load client agree on: the game, its key, and the
//! token a client connects with (renetcode's backend role, which both servers accept).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const PROTOCOL: u64 = 0xbe7c4;
pub const KEY: [u8; 32] = *b"the game benchmark's private key";

pub fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

pub fn token(server: SocketAddr, client_id: u64) -> renetcode::ConnectToken {
    renetcode::ConnectToken::generate(unix_now(), PROTOCOL, 600, client_id, 15, vec![server], None, &KEY).unwrap()
}
