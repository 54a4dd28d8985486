#!/usr/bin/env python3
"""Side-by-side HTTP benchmarks: smoke against its peers, in one run, interleaved.

    python3 bench/run.py [--seconds 5] [--rounds 3] [--scenarios plaintext,...]

Each server gets one worker thread (one nginx worker process) and the load generator (wrk, one
thread) runs on the other core. The figure that counts is the server's CPU time per request:
utime + stime from /proc/PID/stat after minus before, divided by the requests wrk completed.
Rounds interleave the servers so a noisy neighbour hurts all of them alike; the table shows
medians and each peer's ratio to smoke measured in the same run. The table is printed and
written, with the machine, versions and exact commands, to book/src/benchmarks.md.

Peers here so far: nginx (Debian package, `return 200`). may_minihttp, actix-web, hyper and
the WebSocket/UDP scenarios are still to come (see the benchmarks issue).
"""

import argparse
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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

PIPELINE_LUA = """
init = function(args)
   local r = {}
   for i = 1, 16 do r[i] = wrk.format(nil, "/plaintext") end
   req = table.concat(r)
end
request = function() return req end
"""

# name -> (wrk arguments besides the URL, connections)
SCENARIOS = {
    "plaintext": ([], 100),
    "plaintext-1000": ([], 1000),
    "pipelined-16": (["-s", "PIPELINE"], 100),
    "connection-close": (["-H", "Connection: close"], 100),
}

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log error;
events {{ worker_connections 4096; multi_accept on; }}
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, timeout=10.0):
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
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / CLOCK_TICKS


class Server:
    def __init__(self, name, command, port, env=None, pids=None):
        self.name, self.command, self.port = name, command, port
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_listening(port)
        self.pids = pids() if pids else [self.process.pid]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def smoke_server():
    port = free_port()
    env = dict(os.environ, SMOKE_HTTP=f"127.0.0.1:{port}", SMOKE_THREADS="1", SMOKE_LOG="error")
    return Server("smoke", [os.path.join(ROOT, "target/release/plaintext")], port, env)


def nginx_server(workdir):
    port = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(dir=workdir, port=port))
    process_holder = {}

    def worker_pids():
        # The master only supervises; the worker serves. Count both, as nginx users pay for both.
        master = process_holder["server"].process.pid
        children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
        return [master] + [int(p) for p in children]

    server = Server.__new__(Server)
    server.name, server.port = "nginx", port
    server.process = subprocess.Popen(["nginx", "-c", conf, "-p", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    process_holder["server"] = server
    time.sleep(0.2)
    server.pids = worker_pids()
    return server


def run_wrk(server, scenario, seconds, lua_path):
    extra, connections = SCENARIOS[scenario]
    extra = [lua_path if a == "PIPELINE" else a for a in extra]
    url = f"http://127.0.0.1:{server.port}/plaintext"
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url]
    before = cpu_seconds(server.pids)
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    after = cpu_seconds(server.pids)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = re.search(r"Socket errors: (.*)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    return {
        "rps": requests / seconds,
        "cpu_us": (after - before) * 1e6 / max(requests, 1),
        "p50": latency.get("50", "?"),
        "p99": latency.get("99", "?"),
        "problems": ", ".join(filter(None, [errors and errors.group(1), non2xx and f"{non2xx.group(1)} non-2xx"])),
        "command": " ".join(command),
    }


def rss_bytes(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            total += int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
    return total


def idle_memory(server, connections):
    """Resident bytes per idle keep-alive connection: open `connections`, one request each, keep
    them open, and compare the server's RSS before and after."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, connections + 1000), hard))
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave book/src/benchmarks.md alone")
    parser.add_argument("--idle", type=int, default=10_000, help="idle connections for the memory scenario (0 skips it)")
    args = parser.parse_args()
    for tool in ("wrk", "nginx", "cargo"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed (apt-get install wrk nginx-light)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "smoke-examples", "--bin", "plaintext"], cwd=ROOT, check=True)

    workdir = tempfile.mkdtemp(prefix="smoke-bench-")
    lua_path = os.path.join(workdir, "pipeline.lua")
    with open(lua_path, "w") as f:
        f.write(PIPELINE_LUA)
    servers = [smoke_server(), nginx_server(workdir)]
    results = {}
    commands = {}
    try:
        for scenario in args.scenarios.split(","):
            for _ in range(args.rounds):
                for server in servers:  # interleaved: every round runs every server
                    run_wrk(server, scenario, 1, lua_path)  # warm-up, not counted
                    r = run_wrk(server, scenario, args.seconds, lua_path)
                    results.setdefault((scenario, server.name), []).append(r)
                    commands[server.name, scenario] = r["command"]
        idle = {}
        if args.idle:
            for server in servers:
                idle[server.name] = idle_memory(server, args.idle)
    finally:
        for server in servers:
            server.stop()

    lines = [
        "| scenario | server | req/s | p50 | p99 | server CPU µs/req | vs smoke | problems |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in args.scenarios.split(","):
        base = statistics.median(r["cpu_us"] for r in results[scenario, "smoke"])
        for server in servers:
            runs = results[scenario, server.name]
            cpu = statistics.median(r["cpu_us"] for r in runs)
            rps = statistics.median(r["rps"] for r in runs)
            middle = sorted(runs, key=lambda r: r["cpu_us"])[len(runs) // 2]
            problems = "; ".join(sorted({r["problems"] for r in runs if r["problems"]})) or "none"
            lines.append(
                f"| {scenario} | {server.name} | {rps:,.0f} | {middle['p50']} | {middle['p99']} | "
                f"{cpu:.2f} | {cpu / base:.2f} | {problems} |"
            )
    if idle:
        lines += [
            "",
            f"| idle connections ({args.idle:,}, one request each) | server | resident bytes per connection | vs smoke |",
            "|---|---|---:|---:|",
        ]
        for server in servers:
            lines.append(f"| idle-{args.idle} | {server.name} | {idle[server.name]:,.0f} | {idle[server.name] / idle['smoke']:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.no_write:
        return
    nginx_version = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0].split(" Copyright")[0] if (wrk.stdout or wrk.stderr) else "wrk"
    page = f"""# Benchmarks

Produced by `python3 bench/run.py --seconds {args.seconds} --rounds {args.rounds}` on
{time.strftime('%Y-%m-%d')}. Machine: {os.cpu_count()} cores, Linux {platform.release()}.
Versions: {rustc}; {nginx_version}; {wrk_version}.

One worker thread per server (nginx: one worker process; its master is counted too), wrk with
one thread on the other core, loopback. **Server CPU per request** is utime+stime of the
server's processes over the requests completed; servers run interleaved, {args.rounds} rounds
of {args.seconds} s each after a 1 s warm-up, medians shown, ratios are to smoke in the same run.
Absolute numbers move with the machine's neighbours; ratios measured together do not.
wrk's latency percentiles are per request batch, so under pipelining they say little.

{table}

Commands (per round):

```text
""" + "\n".join(sorted(set(commands.values()))) + """
```
"""
    with open(os.path.join(ROOT, "book/src/benchmarks.md"), "w") as f:
        f.write(page)
    print("\nwritten to book/src/benchmarks.md")


if __name__ == "__main__":
    main()
