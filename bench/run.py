#!/usr/bin/env python3
"""Side-by-side benchmarks: smoke against its peers, in one run, interleaved.

    python3 bench/run.py [--seconds 5] [--rounds 3] [--groups http,ws,fanout,udp,game,tls,idle,callgrind,cluster]

Builds smoke's examples (release) and the peers in bench/peers (a separate Cargo project: tokio,
actix-web, hyper, may_minihttp, renet), starts every server with ONE worker thread, and drives them
from the other core: wrk (one thread) for HTTP, and the single-threaded load clients of
bench/peers for WebSocket, UDP and game sessions. The figure that counts is the server's CPU time per request
or message: utime + stime of its process(es) from /proc, after minus before, over the operations
completed. Rounds interleave the servers, so a noisy neighbour hurts all alike; the table shows
medians and each peer's ratio to smoke measured in the same run (above 1.00: the peer spends
more CPU than smoke). The table, the machine, versions and exact commands are printed and
written to book/src/benchmarks.md.

Needs: wrk and nginx (apt-get install wrk nginx-light), valgrind for the instruction count,
nats-server for the cluster rows (bench/cluster.py).
"""

import argparse
import glob
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "bench/peers")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# CPUs for the servers and for the load generators (`--cpus`): apart, the load can neither take
# a server's CPU nor be woken onto it and preempt it there.
PLACEMENT = {"server": None, "load": None}


def on_cpus(role, command):
    cpus = PLACEMENT[role]
    return ["taskset", "-c", cpus, *command] if cpus else list(command)


def release(name):
    return os.path.join(ROOT, "target/release", name)


def peer(name):
    return os.path.join(PEERS, "target/release", name)


PIPELINE_LUA = """
init = function(args)
   local r = {}
   for i = 1, 16 do r[i] = wrk.format(nil, "/plaintext") end
   req = table.concat(r)
end
request = function() return req end
"""

# name -> (wrk arguments besides the URL, connections)
HTTP_SCENARIOS = {
    "plaintext": ([], 100),
    "plaintext-1000": ([], 1000),
    "pipelined-16": (["-s", "PIPELINE"], 100),
    "connection-close": (["-H", "Connection: close"], 100),
    # TLS 1.3, ECDSA P-256, the same certificate for every server: every request of the second
    # is a full handshake (wrk resumes no sessions).
    "https-plaintext": ([], 100),
    "https-connection-close": (["-H", "Connection: close"], 100),
}

TLS_CONF = """
        listen 127.0.0.1:{port} ssl reuseport backlog=4096;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
"""

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 20000; multi_accept on; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    keepalive_requests 100000000;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, udp=False, timeout=15.0):
    if udp:
        time.sleep(0.3)
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime of every thread
    return total / CLOCK_TICKS


def raise_fd_limit():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    def __init__(self, name, command, port, env=None, udp=False, children=False):
        self.name, self.command, self.port = name, command, port
        self.metrics_port = None  # smoke's metrics listener, when `smoke(..., metrics=True)` started it
        self.process = subprocess.Popen(on_cpus("server", command), env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        wait_listening(port, udp)
        self.pids = [self.process.pid]
        if children:
            time.sleep(0.2)
            kids = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout.split()
            self.pids += [int(p) for p in kids]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def smoke(binary, variable, udp=False, metrics=False):
    """With `metrics`, the example also serves its metrics, which `run_load` reads for the
    server's own part of the fan-out latency."""
    def start():
        port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        env = dict(os.environ, **{variable: f"127.0.0.1:{port}"}, SMOKE_THREADS="1", SMOKE_LOG="error")
        metrics_port = free_port() if metrics else None
        if metrics_port:
            env["SMOKE_METRICS"] = f"127.0.0.1:{metrics_port}"
        server = Server("smoke", [release(binary)], port, env, udp=udp)
        server.metrics_port = metrics_port
        return server

    return start


def publish_delivery(server):
    """smoke's `smoke_publish_delivery_seconds` so far: (sum, count, count within 5 ms), or None
    for a server without it."""
    if not server.metrics_port:
        return None
    with socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        text = b"".join(iter(lambda: s.recv(65536), b"")).decode()
    value = lambda pattern: float(re.search(pattern, text, re.M).group(1))
    return (value(r"^smoke_publish_delivery_seconds_sum (\S+)"),
            value(r"^smoke_publish_delivery_seconds_count (\S+)"),
            value(r'^smoke_publish_delivery_seconds_bucket\{le="0\.005"\} (\S+)'))


def smoke_tls(binary, plain_variable, tls_variable, cert):
    """An example with TLS added by the environment (its plain listener moved out of the way)."""
    def start():
        port, plain = free_port(), free_port()
        env = dict(os.environ, **{plain_variable: f"127.0.0.1:{plain}", tls_variable: f"127.0.0.1:{port}"},
                   SMOKE_TLS_CERT=cert[0], SMOKE_TLS_KEY=cert[1], SMOKE_THREADS="1", SMOKE_LOG="error")
        return Server("smoke", [release(binary)], port, env)

    return start


def certificate(workdir):
    """An ECDSA P-256 certificate for localhost, as every TLS row uses."""
    cert, key = os.path.join(workdir, "cert.pem"), os.path.join(workdir, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-addext", "basicConstraints=critical,CA:FALSE", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def peer_server(name, binary, udp=False):
    def start():
        port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
        return Server(name, [peer(binary), str(port), "1"], port, udp=udp)

    return start


def extra_server(name, command):
    """A `--peer` server: its command line, given the port to listen on."""
    def start():
        port = free_port()
        return Server(name, command.format(port=port).split(), port)

    return start


def nginx(workdir, cert=None):
    def start():
        port = free_port()
        conf = os.path.join(workdir, f"nginx-{port}.conf")
        text = NGINX_CONF.format(dir=workdir, port=port)
        if cert:
            plain = f"        listen 127.0.0.1:{port} reuseport backlog=4096;\n"
            text = text.replace(plain, TLS_CONF.format(port=port, cert=cert[0], key=cert[1]))
        with open(conf, "w") as f:
            f.write(text)
        # The master only supervises; the worker serves. Count both, as nginx users pay for both.
        return Server("nginx", ["nginx", "-c", conf, "-p", workdir], port, children=True)

    return start


def run_wrk(server, scenario, seconds, lua_path):
    extra, connections = HTTP_SCENARIOS[scenario]
    extra = [lua_path if a == "PIPELINE" else a for a in extra]
    scheme = "https" if scenario.startswith("https") else "http"
    url = f"{scheme}://127.0.0.1:{server.port}/plaintext"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url]
    before = cpu_seconds(server.pids)
    output = subprocess.run(on_cpus("load", command), capture_output=True, text=True, timeout=seconds + 60).stdout
    after = cpu_seconds(server.pids)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Socket errors: (.*)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    return {
        "rate": requests / seconds,
        "cpu_us": (after - before) * 1e6 / max(requests, 1),
        "p50": latency.get("50", "?"),
        "p99": latency.get("99", "?"),
        "problems": ", ".join(filter(None, [errors and errors.group(1), non2xx and f"{non2xx.group(1)} non-2xx"])),
        "command": " ".join(command).replace(str(server.port), "PORT"),
    }


def closes_on_request(port):
    """True when the server closes after answering `Connection: close`, as the scenario needs:
    one that keeps the connection would be measured on keep-alive instead."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            while s.recv(4096):
                pass
            return True
        except socket.timeout:
            return False


def run_load(server, command, seconds, env=None):
    """Runs a bench/peers load client; it prints `messages=N ... p50_us=A p99_us=B [lost=L]`."""
    before, own_before = cpu_seconds(server.pids), publish_delivery(server)
    output = subprocess.run(on_cpus("load", command), capture_output=True, text=True, timeout=seconds + 120, env=env)
    after, own_after = cpu_seconds(server.pids), publish_delivery(server)
    fields = dict(re.findall(r"(\w+)=(\S+)", output.stdout))
    if "messages" not in fields:
        raise RuntimeError(f"{' '.join(command)} failed: {output.stdout} {output.stderr}")
    messages = int(fields["messages"])
    lost = int(fields.get("lost", "0"))
    return {
        "rate": float(fields["rate"]),
        "cpu_us": (after - before) * 1e6 / max(messages, 1),
        "p50": f"{int(fields['p50_us'])}us",
        "p99": f"{int(fields['p99_us'])}us",
        "problems": f"{lost} lost" if lost else "",
        "command": " ".join(command).replace(str(server.port), "PORT"),
        "own": own_share(own_before, own_after),
    }


def own_share(before, after):
    """From two `publish_delivery` readings: the mean time from a publication to its last
    subscriber's send, and the share of publications sent to all within 5 ms; None without them."""
    if not before or not after or after[1] <= before[1]:
        return None
    publications = after[1] - before[1]
    return (after[0] - before[0]) / publications, (after[2] - before[2]) / publications


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
    return total


def idle_memory(server, connections):
    """Resident bytes per idle keep-alive connection: open `connections`, one request each, keep
    them open, and compare the server's RSS before and after."""
    before = rss_bytes(server.pids)
    sockets = []
    request = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
    try:
        for _ in range(connections):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(request)
            reply = b""
            while not reply.endswith(b"Hello, World!"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("server closed an idle test connection")
                reply += chunk
            sockets.append(s)
        time.sleep(0.5)
        after = rss_bytes(server.pids)
    finally:
        for s in sockets:
            s.close()
    return (after - before) / connections


def game_session_memory(server, sessions):
    """Resident bytes per connected, idle game session: `game_load` connects `sessions` clients
    speaking the server's own channels and keeps them connected, sending nothing; the server's
    RSS is compared before and after."""
    before = rss_bytes(server.pids)
    kind = "smoke" if server.name == "smoke" else "renet"
    command = [peer("game_load"), kind, f"127.0.0.1:{server.port}", str(sessions), "3", "0"]
    load = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if load.stdout.readline().strip() != "connected":
            raise RuntimeError(f"{server.name}: the game clients did not all connect")
        time.sleep(1.0)
        after = rss_bytes(server.pids)
    finally:
        load.wait(timeout=60)
    return (after - before) / sessions


def read_http_response(reader):
    """Reads one response (headers and a Content-Length body) from a buffered socket reader."""
    length = 0
    while True:
        line = reader.readline()
        if not line:
            raise RuntimeError("the server closed the connection")
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line == b"\r\n":
            break
    reader.read(length)


def http_keep_alive(port, operations):
    with socket.create_connection(("127.0.0.1", port)) as s:
        reader = s.makefile("rb")
        for _ in range(operations):
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            read_http_response(reader)


def http_pipelined(port, operations, depth=16):
    with socket.create_connection(("127.0.0.1", port)) as s:
        reader = s.makefile("rb")
        for _ in range(operations // depth):
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * depth)
            for _ in range(depth):
                read_http_response(reader)


def ws_echo(port, operations, connections=20, size=32):
    """`operations` 32-byte binary messages spread over `connections` WebSocket clients, each
    waiting for its echo before the next round."""
    clients = []
    for _ in range(connections):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        reader = s.makefile("rb")
        while reader.readline() != b"\r\n":
            pass
        clients.append((s, reader))
    mask = b"\x01\x02\x03\x04"
    payload = bytes(range(size))
    frame = bytes([0x82, 0x80 | size]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    for _ in range(operations // connections):
        for s, _ in clients:
            s.sendall(frame)
        for _, reader in clients:
            echo = reader.read(2 + size)
            if echo[2:] != payload:
                raise RuntimeError("wrong WebSocket echo")
    for s, _ in clients:
        s.close()


def udp_echo(port, operations, peers=16, size=32):
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(peers)]
    payload = bytes(range(size))
    for s in sockets:
        s.settimeout(30)
    for _ in range(operations // peers):
        for s in sockets:
            s.sendto(payload, ("127.0.0.1", port))
        for s in sockets:
            if s.recv(2048) != payload:
                raise RuntimeError("wrong UDP echo")
    for s in sockets:
        s.close()


# name -> (client, udp, servers). A server is (name, example, override variable) for smoke
# and (name, peer binary, threads argument) for a peer, which takes its port and worker count as
# arguments; tokio's gets 0, its current-thread runtime (valgrind runs one thread at a time, and
# would count a multi-thread runtime's idle workers spinning as the server's work).
CALLGRIND_SCENARIOS = {
    "HTTP keep-alive, GET /plaintext": (http_keep_alive, False, [
        ("smoke", "plaintext", "SMOKE_HTTP"), ("may_minihttp", "may_plaintext", "1")]),
    "HTTP pipelined x16, GET /plaintext": (http_pipelined, False, [
        ("smoke", "plaintext", "SMOKE_HTTP"), ("may_minihttp", "may_plaintext", "1")]),
    "WebSocket echo, 32 B binary, 20 connections": (ws_echo, False, [
        # Not tokio-tungstenite: it zeroes its 128 KiB read buffer on every read with `rep stosb`,
        # which callgrind counts once per byte (245,000 "instructions" a message, a few µs of
        # real time). uWebSockets joins with --callgrind-peer.
        ("smoke", "ws_echo", "SMOKE_WS")]),
    "UDP echo, 32 B, 16 peers": (udp_echo, True, [
        ("smoke", "udp_echo", "SMOKE_UDP"), ("tokio", "tokio_udp", "0")]),
}


def parse_extra_peers(specs):
    """`--callgrind-peer` or `--peer 'NAME|SCENARIO PREFIX|COMMAND {port}'`: a peer built
    elsewhere (a uWebSockets server, say), run on the scenarios whose name starts with the prefix."""
    peers = []
    for spec in specs:
        name, prefix, command = spec.split("|", 2)
        peers.append((name, prefix, command))
    return peers


def callgrind_count(command, env, port, client, udp, operations, out):
    """The instructions valgrind counted in one run of `command` serving `operations`."""
    process = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if udp:
            time.sleep(3)  # valgrind starts slowly, and a UDP socket cannot be probed
        else:
            wait_listening(port, timeout=60)
        client(port, operations)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # A peer that dies on SIGTERM leaves one file per thread (`out` and `out-02`...): sum them.
    total = 0
    for path in [out] + sorted(glob.glob(out + "-*")):
        with open(path) as f:
            text = f.read()
        found = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
        total += int(found.group(1)) if found else 0
    return total


def callgrind_per_operation(workdir, scenarios=CALLGRIND_SCENARIOS, extra_peers=()):
    """Instructions per operation in each server's process (all threads, user space), from two
    valgrind runs per scenario and server that differ only in the number of operations: the
    difference cancels start-up and shutdown. Instruction counts do not depend on the machine's
    load. Every server gets one worker thread. Returns {scenario: {server: count}}."""
    counts = {}
    for name, (client, udp, servers) in scenarios.items():
        servers = list(servers) + [(peer_name, None, command) for peer_name, prefix, command in extra_peers
                                   if name.startswith(prefix)]
        for server, binary, variable in servers:
            totals = {}
            for operations in (1600, 9600):
                port = free_port(socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                out = os.path.join(workdir, f"callgrind.{server}.{binary or 'extra'}.{operations}")
                env = dict(os.environ, SMOKE_THREADS="1", SMOKE_LOG="error")
                if binary is None:  # an extra peer: `variable` holds its command line
                    command = variable.format(port=port).split()
                elif not variable.startswith("SMOKE_"):
                    command = [peer(binary), str(port), variable]
                else:
                    env[variable] = f"127.0.0.1:{port}"
                    command = [release(binary)]
                totals[operations] = callgrind_count(command, env, port, client, udp, operations, out)
            counts.setdefault(name, {})[server] = (totals[9600] - totals[1600]) / 8000
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--groups", default="http,ws,fanout,udp,game,tls,idle,callgrind,cluster")
    parser.add_argument("--no-write", action="store_true", help="print only; leave book/src/benchmarks.md alone")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory scenario")
    parser.add_argument("--callgrind-peer", action="append", default=[], metavar="'NAME|SCENARIO PREFIX|COMMAND {port}'",
                        help="another server for the callgrind rows, built elsewhere (a uWebSockets echo server, say)")
    parser.add_argument("--peer", action="append", default=[], metavar="'NAME|SCENARIO PREFIX|COMMAND {port}'",
                        help="another server for the load rows, built elsewhere (a uWebSockets pub/sub server, say)")
    parser.add_argument("--cpus", default=None, metavar="SERVER:LOAD",
                        help="taskset CPU lists for the servers and the load (default 0:1-N, or 0:1 on two CPUs; "
                             "'none' leaves placement to the scheduler)")
    args = parser.parse_args()
    cpus = args.cpus or {1: "none", 2: "0:1"}.get(os.cpu_count(), f"0:1-{os.cpu_count() - 1}")
    if cpus != "none":
        PLACEMENT["server"], PLACEMENT["load"] = cpus.split(":")
    groups = args.groups.split(",")
    needs_peers = any(group != "cluster" for group in groups)
    needs_load_tools = any(group not in ("callgrind", "cluster") for group in groups)
    tools = ["cargo"] + (["wrk", "nginx", "openssl"] if needs_load_tools else [])
    tools += ["valgrind"] if "callgrind" in groups else []
    tools += ["nats-server"] if "cluster" in groups else []
    for tool in tools:
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install wrk nginx-light valgrind)")
    raise_fd_limit()
    examples = ["plaintext", "ws_echo", "fanout", "udp_echo"]
    build = ["cargo", "build", "--release", "-q", "-p", "smoke-examples"] + [a for e in examples for a in ("--bin", e)]
    subprocess.run(build, cwd=ROOT, check=True)
    if needs_peers:
        subprocess.run(["cargo", "build", "--release", "-q"], cwd=PEERS, check=True)

    workdir = tempfile.mkdtemp(prefix="smoke-bench-")
    lua_path = os.path.join(workdir, "pipeline.lua")
    with open(lua_path, "w") as f:
        f.write(PIPELINE_LUA)
    s = args.seconds
    http_servers = [
        smoke("plaintext", "SMOKE_HTTP"),
        nginx(workdir),
        peer_server("may_minihttp", "may_plaintext"),
        peer_server("actix-web", "actix_plaintext"),
        peer_server("hyper", "hyper_plaintext"),
    ]
    # group -> [(scenario, run(server) -> result)], [server starters]
    plan = []
    if "http" in groups:
        for scenario in [name for name in HTTP_SCENARIOS if not name.startswith("https")]:
            plan.append((scenario, lambda server, t, sc=scenario: run_wrk(server, sc, t, lua_path), http_servers))
    if "tls" in groups:
        cert = certificate(workdir)
        https_servers = [smoke_tls("plaintext", "SMOKE_HTTP", "SMOKE_HTTPS", cert), nginx(workdir, cert)]
        for scenario in [name for name in HTTP_SCENARIOS if name.startswith("https")]:
            plan.append((scenario, lambda server, t, sc=scenario: run_wrk(server, sc, t, lua_path), https_servers))
        wss_servers = [smoke_tls("ws_echo", "SMOKE_WS", "SMOKE_WSS", cert),
                       lambda: Server("tokio-tungstenite", [peer("tokio_ws"), str(port := free_port()), "1", *cert], port)]
        wss_env = dict(os.environ, SMOKE_BENCH_CA=cert[0])
        plan.append(("wss-echo-100", lambda server, t: run_load(server, [peer("ws_load"), "echo", f"wss://localhost:{server.port}/", "100", str(t)], t, wss_env), wss_servers))
    if "ws" in groups:
        servers = [smoke("ws_echo", "SMOKE_WS"), peer_server("tokio-tungstenite", "tokio_ws")]
        plan.append(("ws-echo-100", lambda server, t: run_load(server, [peer("ws_load"), "echo", f"ws://127.0.0.1:{server.port}/", "100", str(t)], t), servers))
    if "fanout" in groups:
        # The bare epoll loop does nothing but the kernel's part: the floor any server's row sits on.
        servers = [smoke("fanout", "SMOKE_WS", metrics=True), peer_server("tokio-tungstenite", "tokio_ws"),
                   peer_server("bare epoll loop", "epoll_fanout")]
        fanout = lambda subscribers, rate: lambda server, t: run_load(
            server, [peer("fanout_load"), f"ws://127.0.0.1:{server.port}", subscribers, str(t), rate], t)
        # 100,000 to 200,000 deliveries a second for the CPU per delivery, from 10 subscribers
        # to 1,000; then 20 publications a second (a game's tick) to 1,000 for latency.
        plan.append(("fanout-1x10", fanout("10", "10000"), servers))
        plan.append(("fanout-1x100", fanout("100", "2000"), servers))
        plan.append(("fanout-1x1000", fanout("1000", "200"), servers))
        plan.append(("fanout-1x1000-20hz", fanout("1000", "20"), servers))
    if "udp" in groups:
        servers = [smoke("udp_echo", "SMOKE_UDP", udp=True), peer_server("tokio", "tokio_udp", udp=True)]
        plan.append(("udp-echo-32", lambda server, t: run_load(server, [peer("udp_load"), f"127.0.0.1:{server.port}", "32", str(t)], t), servers))
    game_servers = [peer_server("smoke", "smoke_game_echo", udp=True), peer_server("renet", "renet_echo", udp=True)]
    if "game" in groups:
        kind = lambda server: "smoke" if server.name == "smoke" else "renet"
        game = lambda server, t: run_load(server, [peer("game_load"), kind(server), f"127.0.0.1:{server.port}", "32", str(t), "500"], t)
        plan.append(("game-echo-32x500", game, game_servers))

    results, commands, names, notes = {}, {}, {}, []
    load_peers = parse_extra_peers(args.peer)
    for scenario, run, starters in plan:
        starters = starters + [extra_server(name, command) for name, prefix, command in load_peers
                               if scenario.startswith(prefix)]
        # Fresh servers per scenario, started once and run interleaved.
        servers = [start() for start in starters]
        names[scenario] = [server.name for server in servers]
        if scenario == "connection-close":
            for server in servers:
                if not closes_on_request(server.port):
                    notes.append(f"{server.name} keeps the connection open after `Connection: close`, so its "
                                 "connection-close row measures keep-alive requests.")
        try:
            for _ in range(args.rounds):
                for server in servers:
                    run(server, 1)  # warm-up, not counted
                    r = run(server, s)
                    results.setdefault((scenario, server.name), []).append(r)
                    commands[scenario, server.name] = r["command"]
        finally:
            for server in servers:
                server.stop()

    sessions = {}
    if "game" in groups:
        for start in game_servers:
            server = start()
            try:
                sessions[server.name] = game_session_memory(server, 500)
            finally:
                server.stop()
    idle = {}
    if "idle" in groups:
        for start in http_servers:
            server = start()
            try:
                idle[server.name] = idle_memory(server, args.idle)
            finally:
                server.stop()
    extra_peers = parse_extra_peers(args.callgrind_peer)
    instructions = callgrind_per_operation(workdir, extra_peers=extra_peers) if "callgrind" in groups else None
    cluster = None
    if "cluster" in groups:
        from cluster import cluster_table
        cluster = cluster_table(args.seconds, 1000)

    lines = [
        "| scenario | server | ops/s | p50 | p99 | server CPU µs/op | vs smoke | problems |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario, _, _ in plan:
        base = statistics.median(r["cpu_us"] for r in results[scenario, "smoke"])
        for name in names[scenario]:
            runs = results[scenario, name]
            cpu = statistics.median(r["cpu_us"] for r in runs)
            rate = statistics.median(r["rate"] for r in runs)
            middle = sorted(runs, key=lambda r: r["cpu_us"])[len(runs) // 2]
            problems = "; ".join(sorted({r["problems"] for r in runs if r["problems"]})) or "none"
            lines.append(
                f"| {scenario} | {name} | {rate:,.0f} | {middle['p50']} | {middle['p99']} | "
                f"{cpu:.2f} | {cpu / base:.2f} | {problems} |"
            )
    if idle:
        lines += [
            "",
            f"| idle HTTP connections ({args.idle:,}, one request each) | server | resident bytes per connection | vs smoke |",
            "|---|---|---:|---:|",
        ]
        for name, value in idle.items():
            lines.append(f"| idle-{args.idle} | {name} | {value:,.0f} | {value / idle['smoke']:.2f} |")
    if sessions:
        lines += ["", "| idle game sessions (500, connected, sending nothing) | server | resident bytes per session | vs smoke |",
                  "|---|---|---:|---:|"]
        for name, value in sessions.items():
            lines.append(f"| game-idle-500 | {name} | {value:,.0f} | {value / sessions['smoke']:.2f} |")
    if instructions is not None:
        lines += ["", "| operation (callgrind, the server's whole process, user space, one worker) | server | "
                  "instructions per operation | vs smoke |", "|---|---|---:|---:|"]
        for name, by_server in instructions.items():
            for server, count in by_server.items():
                lines.append(f"| {name} | {server} | {count:,.0f} | {count / by_server['smoke']:.2f} |")
    if cluster is not None:
        lines += ["", "Topics across nodes (`bench/cluster.py`: nats-server and two chat nodes, one worker each; "
                  "latency paced at 1,000 msg/s):", ""] + cluster
    for scenario, _, _ in plan:
        own = [r["own"] for r in results[scenario, "smoke"] if r.get("own")]
        if own:
            mean = statistics.median(o[0] for o in own)
            mean = f"{mean * 1e3:.2f} ms" if mean >= 1e-3 else f"{mean * 1e6:.0f} µs"
            within = statistics.median(o[1] for o in own) * 100
            notes.append(f"{scenario}: smoke's own part (`smoke_publish_delivery_seconds`), from a publication to "
                         f"the last subscriber's send, is {mean} on average; {within:.0f}% of publications "
                         f"are sent to all within 5 ms (medians of the rounds).")
    if notes:
        lines += [""] + [f"Note: {note}" for note in notes]
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return

    def version(command):
        out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "?"

    lock = open(os.path.join(PEERS, "Cargo.lock")).read()
    crates = []
    for crate in ["may_minihttp", "actix-web", "hyper", "tokio", "tokio-tungstenite", "renet"]:
        m = re.search(rf'name = "{crate}"\nversion = "([^"]+)"', lock)
        crates.append(f"{crate} {m.group(1) if m else '?'}")
    page = f"""# Benchmarks

Produced by `python3 bench/run.py --seconds {args.seconds} --rounds {args.rounds}` on
{time.strftime('%Y-%m-%d')}. Machine: {os.cpu_count()} cores, Linux {platform.release()}.
Versions: {version(["rustc", "--version"])}; {version(["nginx", "-v"])}; {version(["wrk", "-v"]).split(" Copyright")[0]};
{", ".join(crates)}.

Every server runs **one worker thread** (nginx: one worker process, its master counted too;
tokio-based peers: a one-worker runtime), on loopback, with the load generator on the other
core (`taskset`: servers on CPU {PLACEMENT["server"] or "any"}, the load on CPU {PLACEMENT["load"] or "any"}): wrk with one thread for HTTP, the clients of `bench/peers` for WebSocket (`ws_load`, one
thread: 100 clients with 8 messages in flight each; `fanout_load`: one publisher to 10
subscribers at 10,000 msg/s, 100 at 2,000, 1,000 at 200, or 1,000 at 20 for the latency row,
the subscribers read by two threads, each with its own epoll
and a hand-written frame reader, so the client's own queueing stays out of the latency; beside
the servers, a bare epoll loop, `epoll_fanout`, that does nothing but read the publication and
`write` it to each subscriber: the floor the kernel's loopback path sets for one thread) and
UDP (`udp_load`, one thread: 32 sockets with 8 datagrams in flight each), and game sessions
(`game_load`, one thread: 32 netcode clients, renetcode's, each sending 500 stamped 32-byte
messages a second on the unreliable channel, over smoke's channels or renet's own; renet's
server runs the loop of its examples, polled every millisecond, as it has no readiness wait).
**Server CPU per operation** is utime+stime of the server's processes over the requests,
messages (for fan-out: deliveries) or datagrams completed. Servers run interleaved,
{args.rounds} rounds of {args.seconds} s each after a warm-up run, medians shown; ratios are to
smoke in the same run (above 1.00: the peer spends more CPU per operation). Absolute numbers
move with the machine's neighbours; ratios measured together do not. wrk's latency percentiles
are per request batch, so under pipelining they say little.

**Instructions per operation** come from `valgrind --tool=callgrind`: each server alone, one
worker thread, the same small Python client (one keep-alive connection; 16 pipelined requests
at a time; 20 WebSocket clients sending 32-byte binary messages in rounds; 16 UDP peers), two
runs of 1,600 and 9,600 operations whose difference cancels start-up. They count the server
process's user-space instructions, all of its threads, and nothing the kernel does, so they are
the same on a busy machine and a quiet one and decide what the CPU figures above only blur.
Peers that valgrind runs are measured beside smoke: may_minihttp for HTTP, tokio (its
current-thread runtime) for UDP. tokio-tungstenite is left out: it zeroes a 128 KiB read buffer
on every read with `rep stosb`, which callgrind counts once per byte. Others built elsewhere join
with `--callgrind-peer 'NAME|SCENARIO PREFIX|COMMAND {{port}}'`: the rows above include
uWebSockets when it was given, an echo server (`/*` echoes, `/plaintext` answers "Hello,
World!", compression off) on uWebSockets and uSockets built with `-O3 -DLIBUS_NO_SSL`. The
same goes for the load rows with `--peer`: the fan-out rows include uWebSockets when it was
given, a pub/sub server on the same build (`/sub` subscribes, `/pub` publishes to them).

{table}

Commands (per round; PORT is each server's):

```text
""" + "\n".join(sorted(set(commands.values()))) + """
```
"""
    with open(os.path.join(ROOT, "book/src/benchmarks.md"), "w") as f:
        f.write(page)
    print("\nwritten to book/src/benchmarks.md")


if __name__ == "__main__":
    main()
