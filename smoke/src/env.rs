//! The `SMOKE_*` environment overrides: a deployment moves a compiled server (its listeners,
//! threads, bind address, packet ring) and adjusts its limits without rebuilding it.

use std::time::Duration;

use crate::config::{Config, Listen, Protocol};
use crate::rt::error::Error;

/// How a limit's variable is read and which setter it feeds.
#[derive(Clone, Copy)]
enum Setting {
    /// A number.
    Count(fn(Config, usize) -> Config),
    /// Milliseconds, at least 1.
    Millis(fn(Config, Duration) -> Config),
    /// Milliseconds, or 0 for none.
    OptionalMillis(fn(Config, Option<Duration>) -> Config),
}

impl Setting {
    fn apply(self, config: Config, value: &str) -> Result<Config, &'static str> {
        let number: u64 = value.parse().map_err(|_| match self {
            Setting::Count(_) => "expected a number",
            Setting::Millis(_) => "expected milliseconds >= 1",
            Setting::OptionalMillis(_) => "expected milliseconds (0 for none)",
        })?;
        Ok(match self {
            Setting::Count(set) => set(config, usize::try_from(number).unwrap_or(usize::MAX)),
            Setting::Millis(_) if number == 0 => return Err("expected milliseconds >= 1"),
            Setting::Millis(set) => set(config, Duration::from_millis(number)),
            Setting::OptionalMillis(set) => set(config, (number > 0).then(|| Duration::from_millis(number))),
        })
    }
}

/// The limits a deployment may change: `SMOKE_` and the attribute key, in capitals. The ones
/// that decide what a hostile client can hold, and what a deployment tunes to its traffic.
const LIMITS: &[(&str, Setting)] = &[
    ("SMOKE_MAX_CONNECTIONS", Setting::Count(Config::max_connections)),
    ("SMOKE_MAX_PEERS", Setting::Count(Config::max_peers)),
    ("SMOKE_MAX_BODY", Setting::Count(Config::max_body)),
    ("SMOKE_MAX_MESSAGE", Setting::Count(Config::max_message)),
    ("SMOKE_MAX_MAILBOX", Setting::Count(Config::max_mailbox)),
    ("SMOKE_HEADER_TIMEOUT_MS", Setting::Millis(Config::header_timeout)),
    ("SMOKE_KEEP_ALIVE_TIMEOUT_MS", Setting::Millis(Config::keep_alive_timeout)),
    ("SMOKE_BODY_TIMEOUT_MS", Setting::Millis(Config::body_timeout)),
    ("SMOKE_UDP_NEW_PEER_TIMEOUT_MS", Setting::Millis(Config::udp_new_peer_timeout)),
    ("SMOKE_IDLE_TIMEOUT_MS", Setting::OptionalMillis(Config::idle_timeout)),
    ("SMOKE_SEND_TIMEOUT_MS", Setting::OptionalMillis(Config::send_timeout)),
    ("SMOKE_WS_IDLE_TIMEOUT_MS", Setting::OptionalMillis(Config::ws_idle_timeout)),
    ("SMOKE_UDP_IDLE_TIMEOUT_MS", Setting::OptionalMillis(Config::udp_idle_timeout)),
];

impl Config {
    /// Applies the documented environment overrides, so a deployment (or a test) can move a
    /// compiled server without rebuilding it:
    ///
    /// | variable | value | effect |
    /// |---|---|---|
    /// | `SMOKE_TCP` | port or host:port, comma-separated | replaces every TCP listener |
    /// | `SMOKE_HTTP`, `SMOKE_WS`, `SMOKE_UDP` | as above | the same for those protocols (an error while this server has none) |
    /// | `SMOKE_HTTPS`, `SMOKE_WSS`, `SMOKE_TLS` | as above | the same, and they may add TLS to a server that serves the plain protocol (`http`, `ws`, `tcp`) |
    /// | `SMOKE_WS_DEFLATE` | `on`, `dedicated` or `off` | permessage-deflate ([`Config::ws_deflate`], [`Config::ws_deflate_dedicated`]) |
    /// | `SMOKE_METRICS` | port or host:port, or `off` | the admin listener ([`Config::metrics`]) |
    /// | `SMOKE_PROCESSES` | a number ≥ 1 | worker processes under a supervisor ([`Config::processes`]) |
    /// | `SMOKE_HANDOFF` | a path | restarts take the sockets over from the server running there ([`Config::handoff`]) |
    /// | `SMOKE_CLUSTER` | `nats://HOST:PORT` | bridges topics through that NATS server ([`Config::cluster`]) |
    /// | `SMOKE_PROXY_PROTOCOL` | `on` or `off` | every stream listener's connections start with a PROXY protocol header ([`Config::proxy_protocol`]) |
    /// | `SMOKE_TLS_CERT`, `SMOKE_TLS_KEY` | PEM file paths, comma-separated, in pairs | replace the TLS certificates and their keys |
    /// | `SMOKE_PFRING` | a network interface name | takes UDP input from the packet ring on it ([`Config::pfring`]; needs a udp listener) |
    /// | `SMOKE_THREADS` | `auto` or a number ≥ 1 | worker threads |
    /// | `SMOKE_BIND` | an IP address | address for bare ports |
    /// | `SMOKE_MAX_CONNECTIONS`, `SMOKE_MAX_PEERS`, `SMOKE_MAX_BODY`, `SMOKE_MAX_MESSAGE`, `SMOKE_MAX_MAILBOX` | a number | the limit of the attribute key of the same name |
    /// | `SMOKE_HEADER_TIMEOUT_MS`, `SMOKE_KEEP_ALIVE_TIMEOUT_MS`, `SMOKE_BODY_TIMEOUT_MS`, `SMOKE_UDP_NEW_PEER_TIMEOUT_MS` | milliseconds ≥ 1 | the timeout of the key of the same name |
    /// | `SMOKE_IDLE_TIMEOUT_MS`, `SMOKE_SEND_TIMEOUT_MS`, `SMOKE_WS_IDLE_TIMEOUT_MS`, `SMOKE_UDP_IDLE_TIMEOUT_MS` | milliseconds, `0` for none | the same, for timeouts that may be off |
    ///
    /// A malformed value is a configuration [`Error`] naming the variable and the value.
    pub fn apply_env(self) -> Result<Config, Error> {
        self.apply_overrides(|name| std::env::var(name).ok())
    }

    /// [`apply_env`](Config::apply_env) over any lookup (used by tests without touching the
    /// process environment).
    pub fn apply_overrides(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let bad = |name: &str, value: &str, why: String| Error::config(format!("{name}={value:?}: {why}"));
        if let Some(value) = lookup("SMOKE_BIND") {
            self.runtime.bind =
                value.trim().parse().map_err(|_| bad("SMOKE_BIND", &value, "expected an IP address".into()))?;
        }
        if let Some(value) = lookup("SMOKE_THREADS") {
            self.runtime.threads = match value.trim() {
                "auto" => 0,
                n => match n.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad("SMOKE_THREADS", &value, "expected `auto` or a number >= 1".into()));
                    }
                },
            };
        }
        if let Some(value) = lookup("SMOKE_PFRING") {
            // Sets or moves the ring: the same binary can take its UDP input from a ring in
            // one deployment and from its sockets in another.
            if !self.listeners.iter().any(|(p, _)| *p == Protocol::Udp) {
                return Err(bad(
                    "SMOKE_PFRING",
                    &value,
                    "the packet ring feeds udp listeners; this server has none".into(),
                ));
            }
            let interface = value.trim();
            if let Err(why) = smoke_rules::check_interface_name(interface) {
                return Err(bad("SMOKE_PFRING", &value, format!("expected a network interface name ({why})")));
            }
            self.runtime.pfring = Some(interface.to_owned());
        }
        for (variable, files) in [("SMOKE_TLS_CERT", &mut self.tls_certs), ("SMOKE_TLS_KEY", &mut self.tls_keys)] {
            if let Some(value) = lookup(variable) {
                if value.split(',').any(|path| path.trim().is_empty()) {
                    return Err(bad(variable, &value, "expected PEM file paths, comma-separated".into()));
                }
                *files = value.split(',').map(|path| path.trim().into()).collect();
            }
        }
        self = self.apply_deployment(&lookup)?;
        #[cfg(feature = "game")]
        {
            self = self.apply_game_env(&lookup)?;
        }
        for (variable, setting) in LIMITS {
            if let Some(value) = lookup(variable) {
                self = setting.apply(self, value.trim()).map_err(|why| bad(variable, &value, why.into()))?;
            }
        }
        for protocol in Protocol::ALL {
            let name = protocol.name();
            let variable = format!("SMOKE_{}", name.to_ascii_uppercase());
            let Some(value) = lookup(&variable) else { continue };
            // TLS may be added where its family is served (`SMOKE_HTTPS` on a server with an
            // http listener): the handlers are the same, and a deployment decides on TLS.
            let has = |wanted: Protocol| self.listeners.iter().any(|(declared, _)| *declared == wanted);
            let added_tls = protocol.is_tls() && has(protocol.family());
            if !has(protocol) && !added_tls {
                return Err(bad(&variable, &value, format!("this server has no {name} listener to move")));
            }
            let mut parsed = Vec::new();
            for part in value.split(',') {
                parsed.push(Listen::parse(part).map_err(|why| bad(&variable, &value, why.to_string()))?);
            }
            self.listeners.retain(|(p, _)| *p != protocol);
            self.listeners.extend(parsed.into_iter().map(|listen| (protocol, listen)));
        }
        Ok(self)
    }

    /// The overrides that say how a server is deployed rather than where it listens or how
    /// much it takes: compression, metrics, processes, handoff, cluster, PROXY protocol.
    fn apply_deployment(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let bad = |name: &str, value: &str, why: String| Error::config(format!("{name}={value:?}: {why}"));
        let deflate =
            [("on", (true, false)), ("shared", (true, false)), ("dedicated", (true, true)), ("off", (false, false))];
        if let Some(choice) = switch(&lookup, "SMOKE_WS_DEFLATE", &deflate, "`on`, `dedicated` or `off`")? {
            (self.ws.deflate, self.ws.deflate_dedicated) = choice;
        }
        if let Some(value) = lookup("SMOKE_METRICS") {
            self.metrics = match value.trim() {
                "off" => None,
                listen => Some(Listen::parse(listen).map_err(|why| bad("SMOKE_METRICS", &value, why.to_string()))?),
            };
        }
        if let Some(value) = lookup("SMOKE_PROCESSES") {
            match value.trim().parse::<usize>() {
                Ok(count) if (1..=smoke_rules::limits::MAX_PROCESSES).contains(&count) => self.processes = count,
                _ => {
                    let why = format!("expected a number from 1 to {}", smoke_rules::limits::MAX_PROCESSES);
                    return Err(bad("SMOKE_PROCESSES", &value, why));
                }
            }
        }
        if let Some(value) = lookup("SMOKE_HANDOFF") {
            if value.trim().is_empty() {
                return Err(bad("SMOKE_HANDOFF", &value, "expected the path of a Unix socket".into()));
            }
            self.handoff = Some(value.trim().into());
        }
        if let Some(value) = lookup("SMOKE_CLUSTER") {
            let url = value.trim();
            smoke_rules::check_cluster_url(url).map_err(|why| bad("SMOKE_CLUSTER", &value, why.into()))?;
            self.cluster = Some(url.to_owned());
        }
        if let Some(on) = switch(&lookup, "SMOKE_PROXY_PROTOCOL", &[("on", true), ("off", false)], "`on` or `off`")? {
            self.proxy_protocol = on;
        }
        Ok(self)
    }
}

/// A variable that takes one of a few words: what the one it holds stands for, if it is set.
fn switch<T: Copy>(
    lookup: impl Fn(&str) -> Option<String>,
    variable: &str,
    choices: &[(&str, T)],
    expected: &str,
) -> Result<Option<T>, Error> {
    let Some(value) = lookup(variable) else { return Ok(None) };
    match choices.iter().find(|(word, _)| *word == value.trim()) {
        Some((_, choice)) => Ok(Some(*choice)),
        None => Err(Error::config(format!("{variable}={value:?}: expected {expected}"))),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    #[test]
    fn environment_overrides_replace_listeners_and_threads() {
        let env = |name: &str| match name {
            "SMOKE_TCP" => Some("127.0.0.1:0,7000".to_string()),
            "SMOKE_THREADS" => Some("3".to_string()),
            "SMOKE_BIND" => Some("::1".to_string()),
            _ => None,
        };
        let config = Config::new().tcp(9090).threads(1).apply_overrides(env).unwrap();
        assert_eq!(
            config.listeners(),
            [(Protocol::Tcp, Listen::Addr("127.0.0.1:0".into())), (Protocol::Tcp, Listen::Port(7000))]
        );
        assert_eq!(config.worker_threads(), 3);
        assert_eq!(config.runtime().bind, "::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn malformed_overrides_name_the_variable_and_value() {
        let only = |key: &'static str, value: &'static str| move |name: &str| (name == key).then(|| value.to_string());
        let err = Config::new().apply_overrides(only("SMOKE_THREADS", "zero")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_THREADS=\"zero\": expected `auto` or a number >= 1");
        let err = Config::new().tcp(1).apply_overrides(only("SMOKE_TCP", "99999")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_TCP=\"99999\": port 99999 is out of range (0..=65535)");
        let err = Config::new().tcp(1).apply_overrides(only("SMOKE_HTTP", "8080")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_HTTP=\"8080\": this server has no http listener to move");
        let err = Config::new().apply_overrides(only("SMOKE_TCP", "8080")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_TCP=\"8080\": this server has no tcp listener to move");
        let err = Config::new().apply_overrides(only("SMOKE_BIND", "nowhere")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_BIND=\"nowhere\": expected an IP address");
        assert_eq!(
            Config::new().threads(4).apply_overrides(only("SMOKE_THREADS", "auto")).unwrap().runtime().threads,
            0
        );
        let err = Config::new().apply_overrides(only("SMOKE_MAX_PEERS", "many")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_MAX_PEERS=\"many\": expected a number");
        let err = Config::new().apply_overrides(only("SMOKE_HEADER_TIMEOUT_MS", "0")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_HEADER_TIMEOUT_MS=\"0\": expected milliseconds >= 1");
        let err = Config::new().apply_overrides(only("SMOKE_SEND_TIMEOUT_MS", "-1")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_SEND_TIMEOUT_MS=\"-1\": expected milliseconds (0 for none)");
        let metrics = Config::new().apply_overrides(only("SMOKE_METRICS", "127.0.0.1:9100")).unwrap().metrics;
        assert_eq!(metrics, Some(Listen::Addr("127.0.0.1:9100".into())));
        let on = Config::new().metrics(9100);
        assert_eq!(on.apply_overrides(only("SMOKE_METRICS", "off")).unwrap().metrics, None);
        let err = Config::new().apply_overrides(only("SMOKE_PROCESSES", "0")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_PROCESSES=\"0\": expected a number from 1 to 1024");
        assert_eq!(Config::new().apply_overrides(only("SMOKE_PROCESSES", "4")).unwrap().processes, 4);
        let err = Config::new().apply_overrides(only("SMOKE_HANDOFF", " ")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_HANDOFF=\" \": expected the path of a Unix socket");
        let handoff = Config::new().apply_overrides(only("SMOKE_HANDOFF", "/run/chat.sock")).unwrap().handoff;
        assert_eq!(handoff.as_deref(), Some(std::path::Path::new("/run/chat.sock")));
        let err = Config::new().apply_overrides(only("SMOKE_CLUSTER", "localhost:4222")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_CLUSTER=\"localhost:4222\": expected nats://HOST or nats://HOST:PORT");
        let cluster = Config::new().apply_overrides(only("SMOKE_CLUSTER", "nats://10.0.0.5:4222 ")).unwrap().cluster;
        assert_eq!(cluster.as_deref(), Some("nats://10.0.0.5:4222"));
        let err = Config::new().apply_overrides(only("SMOKE_PROXY_PROTOCOL", "yes")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_PROXY_PROTOCOL=\"yes\": expected `on` or `off`");
        let err = Config::new().apply_overrides(only("SMOKE_WS_DEFLATE", "max")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_WS_DEFLATE=\"max\": expected `on`, `dedicated` or `off`");
        assert!(Config::new().apply_overrides(only("SMOKE_PROXY_PROTOCOL", " on")).unwrap().proxy_protocol);
        let off = Config::new().proxy_protocol(true).apply_overrides(only("SMOKE_PROXY_PROTOCOL", "off")).unwrap();
        assert!(!off.proxy_protocol);
    }

    #[test]
    fn tls_overrides_add_tls_to_a_served_family_and_pair_certificates() {
        let env = |name: &str| match name {
            "SMOKE_HTTPS" => Some("127.0.0.1:8443".to_string()),
            "SMOKE_TLS_CERT" => Some("a.pem, b.pem".to_string()),
            "SMOKE_TLS_KEY" => Some("a.key,b.key".to_string()),
            _ => None,
        };
        let config = Config::new().http(8080).tls_cert("old.pem").apply_overrides(env).unwrap();
        assert_eq!(config.listeners()[1], (Protocol::Https, Listen::Addr("127.0.0.1:8443".into())));
        let files = config.tls_files().unwrap().unwrap();
        assert_eq!(files, [("a.pem".into(), "a.key".into()), ("b.pem".into(), "b.key".into())]);
        let only = |key: &'static str, value: &'static str| move |name: &str| (name == key).then(|| value.to_string());
        let err = Config::new().tcp(1).apply_overrides(only("SMOKE_WSS", "8443")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_WSS=\"8443\": this server has no wss listener to move");
        let err = Config::new().http(1).apply_overrides(only("SMOKE_TLS_CERT", "a.pem,")).unwrap_err();
        assert_eq!(err.to_string(), "SMOKE_TLS_CERT=\"a.pem,\": expected PEM file paths, comma-separated");
        let err = Config::new().https(1).tls_files().unwrap_err();
        assert_eq!(
            err.to_string(),
            "a https listener needs a certificate: set tls_cert and tls_key (or SMOKE_TLS_CERT and SMOKE_TLS_KEY)"
        );
        let err = Config::new().tls(1).tls_cert("a.pem").tls_cert("b.pem").tls_key("a.key").tls_files().unwrap_err();
        assert_eq!(err.to_string(), "2 tls_cert file(s) but 1 tls_key file(s): each certificate needs its key");
        assert_eq!(Config::new().http(1).tls_cert("unused.pem").tls_files().unwrap(), None);
    }

    #[test]
    fn limit_overrides_reach_their_settings() {
        let env = |name: &str| match name {
            "SMOKE_MAX_CONNECTIONS" => Some("5000".to_string()),
            "SMOKE_MAX_PEERS" => Some(" 300 ".to_string()),
            "SMOKE_KEEP_ALIVE_TIMEOUT_MS" => Some("75000".to_string()),
            "SMOKE_SEND_TIMEOUT_MS" => Some("0".to_string()),
            "SMOKE_IDLE_TIMEOUT_MS" => Some("600000".to_string()),
            _ => None,
        };
        let config = Config::new().tcp(9090).apply_overrides(env).unwrap();
        let runtime = config.runtime();
        assert_eq!((runtime.max_connections, runtime.max_peers), (Some(5000), 300));
        assert_eq!((runtime.send_timeout, runtime.idle_timeout), (None, Some(Duration::from_secs(600))));
        assert_eq!(config.http_limits().keep_alive_timeout, Duration::from_secs(75));
    }
}
