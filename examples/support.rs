//! What every example shares: a stderr logger.

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
