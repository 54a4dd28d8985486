//! [`Error`]: what starting a server can fail with, as one sentence a person can act on.

use std::fmt;
use std::io;

/// Why a server could not start (or its configuration was refused): a sentence saying what was
/// tried and on what, such as `bind 0.0.0.0:9090 (tcp): address in use`.
///
/// Opaque, like hyper's: ask [`is_config`](Error::is_config) or [`is_bind`](Error::is_bind),
/// or [`kind`](Error::kind) for the operating system's classification. Its `Debug` form is the
/// same sentence, so `fn main() -> Result<(), smoke::Error>` prints it as it is:
///
/// ```no_run
/// # #[derive(Default)] struct Echo;
/// # #[smoke::server(tcp = 9000)] impl Echo {
/// #     #[on_data] fn data(&mut self, conn: &mut smoke::Conn, input: &[u8]) -> usize { input.len() }
/// # }
/// fn main() -> Result<(), smoke::Error> {
///     Echo::serve() // on a port in use: `Error: bind 0.0.0.0:9000 (tcp): address in use`
/// }
/// ```
pub struct Error {
    what: What,
    message: String,
    source: Option<io::Error>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    /// The configuration (in code or in an environment override) is refused.
    Config,
    /// A listener could not bind its address.
    Bind,
    /// Another system call failed while starting or stopping.
    Io,
}

impl Error {
    /// A configuration mistake, found before anything was started.
    pub(crate) fn config(message: impl Into<String>) -> Error {
        Error { what: What::Config, message: message.into(), source: None }
    }

    /// A configuration mistake that the operating system would have classed as `kind`
    /// (two listeners of one server on one socket: `AddrInUse`).
    pub(crate) fn config_as(kind: io::ErrorKind, message: impl Into<String>) -> Error {
        Error { what: What::Config, message: message.into(), source: Some(io::Error::from(kind)) }
    }

    /// A listener that could not bind: `message` names the address and protocol.
    pub(crate) fn bind(message: impl Into<String>, source: io::Error) -> Error {
        Error { what: What::Bind, message: message.into(), source: Some(source) }
    }

    /// A system call that failed while doing `what` ("create worker 0's epoll instance", ...).
    pub(crate) fn io(what: impl fmt::Display, source: io::Error) -> Error {
        Error { what: What::Io, message: format!("{what}: {source}"), source: Some(source) }
    }

    /// A system call's error whose message already says what was tried (the packet ring's).
    pub(crate) fn os(source: io::Error) -> Error {
        Error { what: What::Io, message: source.to_string(), source: Some(source) }
    }

    /// Anything else that stopped the server (worker threads that panicked).
    pub(crate) fn other(message: impl Into<String>) -> Error {
        Error { what: What::Io, message: message.into(), source: None }
    }

    /// True for a configuration the server refused: no listener, an address that does not
    /// resolve, overlapping listeners, a malformed `SMOKE_*` override, a protocol the server
    /// cannot serve.
    pub fn is_config(&self) -> bool {
        self.what == What::Config
    }

    /// True when a listener could not bind its address (in use, not available, permission).
    pub fn is_bind(&self) -> bool {
        self.what == What::Bind
    }

    /// The operating system's classification, as [`io::Error::kind`] gives it: `AddrInUse`,
    /// `PermissionDenied`, ...; `InvalidInput` for a configuration mistake.
    pub fn kind(&self) -> io::ErrorKind {
        match (&self.source, self.what) {
            (Some(source), _) => source.kind(),
            (None, What::Config) => io::ErrorKind::InvalidInput,
            (None, _) => io::ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The sentence itself, so `main` returning `Result<(), smoke::Error>` prints something a
/// person can act on rather than a struct dump.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// For programs whose `main` returns `io::Result`: the same sentence, with [`Error::kind`].
impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        io::Error::new(error.kind(), error.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentence_is_both_display_and_debug() {
        let error = Error::bind("bind 0.0.0.0:9 (tcp): address in use", io::Error::from(io::ErrorKind::AddrInUse));
        assert_eq!(format!("{error}"), "bind 0.0.0.0:9 (tcp): address in use");
        assert_eq!(format!("{error:?}"), "bind 0.0.0.0:9 (tcp): address in use");
        assert!(error.is_bind() && !error.is_config());
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        let config = Error::config("no listener configured");
        assert!(config.is_config());
        assert_eq!(io::Error::from(config).kind(), io::ErrorKind::InvalidInput);
    }
}
