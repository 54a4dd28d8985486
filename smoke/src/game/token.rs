//! Connect tokens as a game's backend issues them: [`TokenIssuer`] and [`ConnectToken`].

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::proto::netcode::token::{self, MAX_SERVER_ADDRESSES, PRIVATE_TOKEN_BYTES, TokenContents};
use crate::proto::netcode::{KEY_BYTES, Key, USER_DATA_BYTES};
use crate::sys::fill_random;

/// Issues connect tokens for game servers that share its private key: what a backend's
/// `/token` route (in smoke, an ordinary `#[get]`) hands a player it has authenticated.
///
/// ```
/// use smoke::game::TokenIssuer;
/// use std::time::Duration;
///
/// let key = [7u8; 32]; // in production: 32 random bytes kept secret, shared with the servers
/// let issuer = TokenIssuer::new(0x5eed, key, vec!["203.0.113.9:7000".parse().unwrap()])
///     .unwrap()
///     .expire_after(Duration::from_secs(30));
/// let token = issuer.issue(42, b"player name").unwrap();
/// assert_eq!(token.to_bytes().len(), 2048); // the netcode standard's layout
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    protocol_id: u64,
    private_key: Key,
    servers: Vec<SocketAddr>,
    expire_after: Duration,
    timeout: Option<Duration>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key stays out of logs.
        f.debug_struct("TokenIssuer")
            .field("protocol_id", &self.protocol_id)
            .field("servers", &self.servers)
            .field("expire_after", &self.expire_after)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A token could not be issued: the reason says which input was wrong.
#[derive(Debug)]
pub struct TokenError(String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenError {}

/// How long a token can be redeemed by default: long enough for a client to fetch it and try
/// every address in it, short enough that a leaked one is soon useless (netcode's examples use 30 s).
pub const DEFAULT_TOKEN_EXPIRY: Duration = Duration::from_secs(30);
/// How long a session may hear nothing before it ends, by default: netcode's reference value.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(5);

impl TokenIssuer {
    /// An issuer for the game `protocol_id` whose servers listen at `servers` (1 to 32, tried in
    /// order by the client) and share `private_key`.
    pub fn new(
        protocol_id: u64,
        private_key: [u8; KEY_BYTES],
        servers: Vec<SocketAddr>,
    ) -> Result<TokenIssuer, TokenError> {
        if servers.is_empty() || servers.len() > MAX_SERVER_ADDRESSES {
            return Err(TokenError(format!("a connect token names 1 to 32 servers, not {}", servers.len())));
        }
        Ok(TokenIssuer {
            protocol_id,
            private_key,
            servers,
            expire_after: DEFAULT_TOKEN_EXPIRY,
            timeout: Some(DEFAULT_SESSION_TIMEOUT),
        })
    }

    /// How long after issue a token can still start a session (default 30 s).
    pub fn expire_after(mut self, expire_after: Duration) -> TokenIssuer {
        self.expire_after = expire_after;
        self
    }

    /// How long a session may hear nothing from the other side before it ends, on the server
    /// and the client alike (default 5 s, whole seconds); `None` disables it, for debugging.
    pub fn session_timeout(mut self, timeout: Option<Duration>) -> TokenIssuer {
        self.timeout = timeout;
        self
    }

    /// A token for the player `client_id` (unique among those connected to a server at once)
    /// carrying `user_data` (at most 256 bytes) to the server, with fresh session keys.
    pub fn issue(&self, client_id: u64, user_data: &[u8]) -> Result<ConnectToken, TokenError> {
        if user_data.len() > USER_DATA_BYTES {
            return Err(TokenError(format!("user data is at most 256 bytes, not {}", user_data.len())));
        }
        let mut padded = [0u8; USER_DATA_BYTES];
        padded[..user_data.len()].copy_from_slice(user_data);
        let mut random = [0u8; 24 + 2 * KEY_BYTES];
        fill_random(&mut random).map_err(|e| TokenError(format!("no random bytes for the token's keys: {e}")))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        let timeout_seconds = match self.timeout {
            Some(timeout) => timeout.as_secs().clamp(1, i32::MAX as u64) as i32,
            None => -1,
        };
        let token = ConnectToken {
            client_id,
            protocol_id: self.protocol_id,
            create_timestamp: now,
            expire_timestamp: now + self.expire_after.as_secs().max(1),
            timeout_seconds,
            servers: self.servers.clone(),
            nonce: random[..24].try_into().expect("24 bytes"),
            client_to_server_key: random[24..56].try_into().expect("32 bytes"),
            server_to_client_key: random[56..].try_into().expect("32 bytes"),
            private: Box::new([0; PRIVATE_TOKEN_BYTES]),
        };
        let private = token::seal_private(&token.contents(&padded), &token.nonce, &self.private_key);
        Ok(ConnectToken { private: Box::new(private), ..token })
    }
}

/// One player's ticket to a game server: its private part sealed for the servers, its public
/// part (addresses, keys, timeout) for the client. Send it to the client over HTTPS only: it
/// carries the session's keys.
#[derive(Clone)]
pub struct ConnectToken {
    client_id: u64,
    protocol_id: u64,
    create_timestamp: u64,
    expire_timestamp: u64,
    timeout_seconds: i32,
    servers: Vec<SocketAddr>,
    nonce: [u8; 24],
    client_to_server_key: Key,
    server_to_client_key: Key,
    private: Box<[u8; PRIVATE_TOKEN_BYTES]>,
}

impl fmt::Debug for ConnectToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectToken")
            .field("client_id", &self.client_id)
            .field("protocol_id", &self.protocol_id)
            .field("expire_timestamp", &self.expire_timestamp)
            .field("servers", &self.servers)
            .finish_non_exhaustive()
    }
}

impl ConnectToken {
    /// The player it was issued to.
    pub fn client_id(&self) -> u64 {
        self.client_id
    }

    /// When it stops being accepted, in seconds since the Unix epoch.
    pub fn expire_timestamp(&self) -> u64 {
        self.expire_timestamp
    }

    /// The token in the netcode standard's layout: 2048 bytes, what netcode.io's clients read.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.write(false)
    }

    /// The token as the `renetcode` crate's `ConnectToken::read` takes it: the client id first,
    /// IPv6 addresses as octets, no padding.
    pub fn to_renetcode_bytes(&self) -> Vec<u8> {
        self.write(true)
    }

    fn write(&self, renetcode_layout: bool) -> Vec<u8> {
        // The user data is inside the sealed part already; the public part does not carry it.
        token::write_public(&self.contents(&[0; USER_DATA_BYTES]), &self.nonce, &self.private, renetcode_layout)
    }

    fn contents<'a>(&'a self, user_data: &'a [u8; USER_DATA_BYTES]) -> TokenContents<'a> {
        TokenContents {
            protocol_id: self.protocol_id,
            client_id: self.client_id,
            create_timestamp: self.create_timestamp,
            expire_timestamp: self.expire_timestamp,
            timeout_seconds: self.timeout_seconds,
            server_addresses: &self.servers,
            client_to_server_key: self.client_to_server_key,
            server_to_client_key: self.server_to_client_key,
            user_data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// renetcode's client reads what the issuer writes; the handshake itself is the game
    /// sessions test's (over UDP) and the netcode machine's (in memory).
    #[test]
    fn renetcode_reads_the_tokens_it_issues_and_bad_input_is_refused() {
        let servers = vec!["127.0.0.1:7000".parse().unwrap(), "[2001:db8::1]:7001".parse().unwrap()];
        let issuer = TokenIssuer::new(0x5eed, [3; 32], servers.clone()).unwrap().expire_after(Duration::from_secs(60));
        let token = issuer.issue(21, b"ada").unwrap();
        assert_eq!(token.to_bytes().len(), 2048);
        let read = renetcode::ConnectToken::read(&mut &token.to_renetcode_bytes()[..]).unwrap();
        assert_eq!((read.client_id, read.protocol_id), (21, 0x5eed));
        assert_eq!(read.expire_timestamp - read.create_timestamp, 60);
        assert_eq!(read.server_addresses[..2], [Some(servers[0]), Some(servers[1])], "IPv6 as renetcode writes it");
        assert_eq!(read.timeout_seconds, DEFAULT_SESSION_TIMEOUT.as_secs() as i32);
        assert_ne!(issuer.issue(21, b"ada").unwrap().client_to_server_key, token.client_to_server_key, "fresh keys");

        assert!(TokenIssuer::new(1, [0; 32], vec![]).is_err());
        assert!(TokenIssuer::new(1, [0; 32], vec![servers[0]; 33]).is_err());
        assert!(issuer.issue(1, &[0; 257]).unwrap_err().to_string().contains("256"));
        let debug = format!("{issuer:?}{token:?}");
        assert!(!debug.contains("[3, 3"), "no key in Debug: {debug}");
    }
}
