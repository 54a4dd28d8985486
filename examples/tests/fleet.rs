//! The "Scaling out" chapter's walkthrough, run as the book shows it (`fleet.sh`, whose
//! commands the chapter includes): HAProxy in front of two chat nodes, NATS between them, a
//! chat across the nodes, a restart of one node under wrk load with no error, and health
//! checks taking the other node out. The script checks each step and stops what it started.

#[path = "../../smoke/tests/common/ports.rs"]
mod ports;

use std::process::Command;

use ports::free_ports;

#[test]
fn the_scaling_out_walkthrough_runs_as_the_book_shows_it() {
    let work = std::env::temp_dir().join(format!("smoke-fleet-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let ports = free_ports::<4>().map(|port| port.to_string());
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fleet.sh"))
        .env("CHAT", env!("CARGO_BIN_EXE_chat"))
        .envs([("FRONT", &ports[0]), ("NATS", &ports[1]), ("NODE_A", &ports[2]), ("NODE_B", &ports[3])])
        .env("WORK", &work)
        .output()
        .expect("bash runs");
    let said = String::from_utf8_lossy(&output.stdout);
    let logs: String = ["a.log", "b.log", "haproxy.log", "wrk.txt"]
        .iter()
        .map(|name| format!("--- {name}\n{}", std::fs::read_to_string(work.join(name)).unwrap_or_default()))
        .collect();
    assert!(
        output.status.success(),
        "{:?}\n{said}\n{}\n{logs}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{said}");
    assert!(said.contains("ann heard 'bob: hello"), "{said}");
    assert!(said.contains("requests in"), "{said}");
    assert!(said.contains("20 requests answered with node b gone"), "{said}");
    let _ = std::fs::remove_dir_all(&work);
}
