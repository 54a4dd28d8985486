//! The game listener's settings: the protocol id and key tokens are sealed with, the addresses
//! tokens name, the seats. Set with [`Config`]'s `game_*` setters or `SMOKE_GAME_*`.

use std::net::SocketAddr;

use crate::config::{Config, Listen, Protocol};
use crate::proto::netcode::KEY_BYTES;
use crate::rt::error::Error;

impl Config {
    /// Listens for secure game sessions (netcode 1.02) on UDP at `listen`: players connect with
    /// connect tokens a [`TokenIssuer`](crate::game::TokenIssuer) sealed with the
    /// [`game_key`](Config::game_key). Needs the key.
    pub fn game(self, listen: impl Into<Listen>) -> Config {
        self.listen(Protocol::Game, listen)
    }

    /// The game's protocol id: a token for another game (or another version of this one) is
    /// refused. Default 0.
    pub fn game_protocol(mut self, protocol_id: u64) -> Config {
        self.game.protocol_id = protocol_id;
        self
    }

    /// The 32-byte key shared with the backend that issues tokens (keep it out of source code:
    /// `SMOKE_GAME_KEY` takes it as 64 hex digits). No default: a game listener without one
    /// does not start.
    pub fn game_key(mut self, key: [u8; KEY_BYTES]) -> Config {
        self.game.key = Some(key);
        self
    }

    /// An address clients are given for this server (may be repeated): a token must name one.
    /// Without any, a token must name the listener's own address, or for one bound to every
    /// address (`0.0.0.0`), any address with its port. Set it where several servers share a key
    /// and a port, so a token for one is no use at another.
    pub fn game_public(mut self, addr: SocketAddr) -> Config {
        self.game.public.push(addr);
        self
    }

    /// Players connected at once, across workers; a full server answers with "denied".
    /// Default [`DEFAULT_MAX_CLIENTS`].
    pub fn max_clients(mut self, max: u32) -> Config {
        self.game.max_clients = Some(max.max(1));
        self
    }

    /// `SMOKE_GAME_KEY` (64 hex digits), `SMOKE_GAME_PROTOCOL` (a number, `0x` for hex),
    /// `SMOKE_GAME_PUBLIC` (addresses, comma-separated) and `SMOKE_MAX_CLIENTS`.
    pub(crate) fn apply_game_env(mut self, lookup: &impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let bad = |name: &str, why: &str| Error::config(format!("{name}: {why}"));
        if let Some(value) = lookup("SMOKE_GAME_KEY") {
            // The value is a secret: the error does not repeat it.
            let key = crate::game::key_from_hex(value.trim())
                .ok_or_else(|| bad("SMOKE_GAME_KEY", "expected 64 hex digits (32 bytes)"))?;
            self.game.key = Some(key);
        }
        if let Some(value) = lookup("SMOKE_GAME_PROTOCOL") {
            let text = value.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            self.game.protocol_id = parsed.map_err(|_| bad("SMOKE_GAME_PROTOCOL", "expected a number (0x for hex)"))?;
        }
        if let Some(value) = lookup("SMOKE_GAME_PUBLIC") {
            let parsed: Result<Vec<SocketAddr>, _> = value.split(',').map(|part| part.trim().parse()).collect();
            self.game.public =
                parsed.map_err(|_| bad("SMOKE_GAME_PUBLIC", "expected IP:port addresses, comma-separated"))?;
        }
        if let Some(value) = lookup("SMOKE_MAX_CLIENTS") {
            match value.trim().parse::<u32>() {
                Ok(max) if max >= 1 => self.game.max_clients = Some(max),
                _ => return Err(bad("SMOKE_MAX_CLIENTS", "expected a number >= 1")),
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::game::GameSettings;

    #[test]
    fn the_environment_sets_the_key_protocol_public_addresses_and_seats() {
        let env = |name: &str| match name {
            "SMOKE_GAME_KEY" => Some("00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF".to_owned()),
            "SMOKE_GAME_PROTOCOL" => Some("0x5eed".to_owned()),
            "SMOKE_GAME_PUBLIC" => Some("203.0.113.9:7000, [2001:db8::1]:7000".to_owned()),
            "SMOKE_MAX_CLIENTS" => Some("64".to_owned()),
            _ => None,
        };
        let config = Config::new().game(7000).apply_overrides(env).unwrap();
        assert_eq!(config.game.key.unwrap()[..3], [0x00, 0x11, 0x22]);
        assert_eq!(config.game.key.unwrap()[31], 0xff);
        assert_eq!(config.game.protocol_id, 0x5eed);
        assert_eq!(config.game.public.len(), 2);
        assert_eq!(config.game.max_clients, Some(64));

        for (name, value) in [("SMOKE_GAME_KEY", "abc"), ("SMOKE_GAME_PROTOCOL", "x"), ("SMOKE_MAX_CLIENTS", "0")] {
            let error =
                Config::new().game(7000).apply_overrides(|n| (n == name).then(|| value.to_owned())).unwrap_err();
            assert!(error.to_string().starts_with(name), "{error}");
        }
        let secret = "zz".repeat(32);
        let error = Config::new().apply_overrides(|n| (n == "SMOKE_GAME_KEY").then(|| secret.clone())).unwrap_err();
        assert!(!error.to_string().contains("zz"), "the key is not echoed: {error}");
        assert!(GameSettings::default().check().unwrap_err().contains("SMOKE_GAME_KEY"));
    }
}
