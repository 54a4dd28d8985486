#!/usr/bin/env python3
"""The soak: smoke under steady load, churn and hostile clients for minutes, with its memory and
counters followed throughout.

    python3 bench/soak.py [--minutes 10] [--http 10000] [--ws 1000] [--udp 1000] [--no-write]

Builds bench/soak (the server: HTTP, WebSocket subscribers to a 20 Hz topic, UDP echo, every
default limit) and bench/peers' soak_load (the clients, on one thread), and runs them on
loopback. soak_load holds HTTP keep-alive connections asking every ~10 s, WebSocket subscribers
checking every publication arrives once and in order, and UDP peers echoing a datagram a second;
each churns now and then (close, reset, half a request or frame, at every stage), and hostile
clients come a few a second (silent sockets, slowloris, stalled bodies, non-readers, oversized
uploads, forged UDP sources, protocol violations), each checking the server's answer.

Reported: the load held, the faults injected, the inputs tried, errors (must be 0), the
server's resident memory and its slope after warm-up (must be flat), and how long its counters
took to return to zero once the clients left. The figures go to the "Soak" section of
book/src/operations.md (between its markers), unless --no-write.
"""

import argparse
import os
import re
import signal
import subprocess
import sys
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench/peers")
BOOK = os.path.join(ROOT, "book/src/operations.md")
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def build():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "smoke-soak"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "soak_load"], cwd=PEERS, check=True)


def resident_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def stats(addr):
    """The server's counters, from GET /stats on a connection of its own."""
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/stats", headers={"Connection": "close"})
        body = connection.getresponse().read().decode()
    finally:
        connection.close()
    counts = dict(pair.split("=") for pair in body.split())
    counts = {name: int(value) for name, value in counts.items()}
    counts["connections"] = counts["current"] - counts["peers"] - 1  # less the one asking
    return counts


def slope_kib_per_minute(samples):
    """Least-squares slope of (seconds, KiB) samples, in KiB per minute."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return 60 * cov / var if var else 0.0


def floors(samples):
    """The least of each third of the samples: the memory held through the swings of the load,
    which climbs if something leaks and levels off if buffers and tables only fill to their
    high-water marks."""
    third = max(1, len(samples) // 3)
    return [min(m for _, m in samples[i:i + third]) for i in range(0, third * 3, third)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--http", type=int, default=10_000)
    parser.add_argument("--ws", type=int, default=1_000)
    parser.add_argument("--udp", type=int, default=1_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    seconds = int(args.minutes * 60)

    build()
    env = dict(os.environ, SMOKE_HTTP="127.0.0.1:0", SMOKE_UDP="127.0.0.1:0", SMOKE_LOG="warn")
    server = subprocess.Popen([os.path.join(ROOT, "target/release/soak_server")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    addrs = {}
    while len(addrs) < 2:
        line = server.stdout.readline()
        match = re.match(r"Soak listening on (\S+) \((\w+)\)", line)
        if not match:
            sys.exit(f"the soak server did not start: {line!r} {server.stderr.read()}")
        addrs[match.group(2)] = match.group(1)
    print(f"server {server.pid} on {addrs}; {seconds} s with {args.http} HTTP, {args.ws} WebSocket, {args.udp} UDP clients")

    client = subprocess.Popen([os.path.join(PEERS, "target/release/soak_load"), addrs["http"], addrs["udp"],
                               str(seconds), str(args.http), str(args.ws), str(args.udp)],
                              stdout=subprocess.PIPE, text=True)
    os.set_blocking(client.stdout.fileno(), False)
    memory, peak_connections, output = [], 0, []
    started = time.time()
    while client.poll() is None:
        time.sleep(5)
        elapsed = time.time() - started
        if elapsed <= seconds:
            memory.append((elapsed, resident_kib(server.pid)))
            peak_connections = max(peak_connections, stats(addrs["http"])["connections"])
        for line in iter(client.stdout.readline, ""):
            output.append(line.rstrip())
            if line.startswith("progress"):
                print(f"  {line.rstrip()} rss_kib={memory[-1][1] if memory else 0}")
    output += [line.rstrip() for line in client.stdout]
    done = next((l for l in output if l.startswith("done ")), None)
    if done is None:
        sys.exit(f"the clients did not finish: {output[-5:]}")
    counts = dict(pair.split("=") for pair in done.split()[1:])
    errors = [l for l in output if l.startswith("error: ")]

    # The clients are gone: every count of what is held goes back to zero (UDP peers after the
    # 30 s udp_idle_timeout).
    left_at = time.time()
    held = stats(addrs["http"])
    while time.time() - left_at < 120:
        held = stats(addrs["http"])
        if all(held[k] == 0 for k in ("connections", "peers", "lingering", "subscriptions", "buffers_held")):
            break
        time.sleep(1)
    drained_after = time.time() - left_at
    server.send_signal(signal.SIGTERM)
    server_exit = server.wait(timeout=30)

    warm_from = min(120, seconds / 4)
    warm = [(t, m) for t, m in memory if t >= warm_from] or memory
    slope = slope_kib_per_minute(warm)
    settled = all(held[k] == 0 for k in ("connections", "peers", "lingering", "subscriptions", "buffers_held"))
    n = lambda key: f"{int(counts[key]):,}"
    report = {
        "minutes": f"{args.minutes:g}",
        "load held": f"{args.http:,} HTTP keep-alive connections, {args.ws:,} WebSocket subscribers to a 20 Hz topic, "
                     f"{args.udp:,} UDP peers; {peak_connections:,} connections open at most",
        "faults injected": f"{n('churn')} churns (close, reset, half a request or frame, at accept, mid-request, "
                           f"after an answer; UDP peers moving port), {n('hostile')} hostile clients",
        "inputs tried": f"{n('http_requests')} HTTP requests, {n('ws_messages')} WebSocket deliveries, "
                        f"{n('udp_datagrams')} UDP echoes, over {n('http_connections')} HTTP and "
                        f"{n('ws_connections')} WebSocket connections",
        "errors": counts["errors"],
        "resident memory": f"{min(m for _, m in warm) / 1024:.0f}–{max(m for _, m in warm) / 1024:.0f} MiB after "
                           f"warm-up ({warm_from:.0f} s), least-squares slope {slope:+.0f} KiB/min; its floor "
                           f"(the least of each third) {' → '.join(f'{f / 1024:.0f}' for f in floors(warm))} MiB",
        "when the clients left": f"{'back to zero' if settled else 'NOT back to zero'} {drained_after:.0f} s after "
                                 f"(connections {held['connections']}, UDP peers {held['peers']}, lingering "
                                 f"{held['lingering']}, subscriptions {held['subscriptions']}, buffers held "
                                 f"{held['buffers_held']})",
        "server's counters": f"timeouts {held['timeouts']:,}, refused requests {held['rejected']:,}, "
                             f"peers refused {held['peers_refused']:,}, panics {held['panics']}; "
                             f"exit status {server_exit} after SIGTERM",
    }
    print()
    for name, value in report.items():
        print(f"{name}: {value}")
    for line in errors:
        print(line)
    if not args.no_write:
        write_book(report)
    ok = counts["errors"] == "0" and settled and server_exit == 0 and abs(slope) < 1024
    sys.exit(0 if ok else 1)


def write_book(report):
    rows = "\n".join(f"| {name} | {value} |" for name, value in report.items())
    section = (f"{BEGIN}\n`python3 bench/soak.py --minutes {report['minutes']}`, "
               f"{time.strftime('%Y-%m-%d')}, on {os.cpu_count()} cores (server and clients on the same machine):\n\n"
               f"| | |\n|---|---|\n{rows}\n{END}")
    with open(BOOK) as book:
        text = book.read()
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip() + "\n\n## The soak\n\n" + section + "\n"
    with open(BOOK, "w") as book:
        book.write(text)
    print(f"written to {os.path.relpath(BOOK, ROOT)}")


if __name__ == "__main__":
    main()
