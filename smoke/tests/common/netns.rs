//! Two network namespaces joined by a veth pair, made by a test (as root, as CI runs) and
//! removed when dropped: a server's host and a client's, with a link between them.

use std::process::{Child, Command, Output, Stdio};

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// Runs `program` and panics with what it said unless it succeeded; returns its stdout.
pub fn must(program: &str, args: &[&str]) -> String {
    let output = run(program, args);
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// This test binary again, running only its ignored test `test`, inside `netns`, with `env`
/// set and its stdin and stdout piped: the half of a test that lives on another host.
pub fn spawn_test_in(netns: &str, test: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns]).arg(std::env::current_exe().unwrap());
    command.args(["--exact", test, "--ignored", "--nocapture", "--test-threads=1"]);
    command.envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap()
}

pub struct Namespaces {
    pub server: String,
    pub client: String,
    pub server_link: String,
    pub client_link: String,
}

impl Namespaces {
    /// `server_ip` and `client_ip` on the two ends, in one /24; `prefix` tells this test's
    /// namespaces from another's running at the same time.
    pub fn create(prefix: &str, server_ip: &str, client_ip: &str) -> Namespaces {
        let tag = std::process::id() % 100_000;
        let ns = Namespaces {
            server: format!("smoke-{prefix}s{tag}"),
            client: format!("smoke-{prefix}c{tag}"),
            server_link: format!("{prefix}s{tag}"),
            client_link: format!("{prefix}c{tag}"),
        };
        must("ip", &["netns", "add", &ns.server]);
        must("ip", &["netns", "add", &ns.client]);
        let veth = ["link", "add", &ns.server_link, "netns", &ns.server, "type", "veth", "peer", "name"];
        must("ip", &[&veth[..], &[ns.client_link.as_str(), "netns", &ns.client]].concat());
        for (netns, dev, addr) in [(&ns.server, &ns.server_link, server_ip), (&ns.client, &ns.client_link, client_ip)] {
            must("ip", &["-n", netns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            must("ip", &["-n", netns, "link", "set", dev, "up"]);
            must("ip", &["-n", netns, "link", "set", "lo", "up"]);
        }
        ns
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the veth pair, and with it the other end.
        for netns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", netns]).status();
        }
    }
}
