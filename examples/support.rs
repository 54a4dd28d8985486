//! What the examples share: a stderr logger, and reading a query parameter.

use std::io::Write;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(std::io::stderr(), "[{}] {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Sends smoke's log records to stderr: `info` and above, or the level named by `SMOKE_LOG`
/// (`error`, `warn`, `info`, `debug`, `trace`, `off`).
pub fn init_logging() {
    static LOGGER: StderrLogger = StderrLogger;
    let level = std::env::var("SMOKE_LOG").ok().and_then(|v| v.parse().ok()).unwrap_or(log::LevelFilter::Info);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// `key`'s value in a query string, if present and made of safe characters only.
pub fn query_value<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    let value = query?.split('&').find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))?;
    let safe = !value.is_empty()
        && value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    safe.then_some(value)
}
