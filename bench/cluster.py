#!/usr/bin/env python3
"""Topics across nodes: what smoke's NATS bridge adds to the broker's own cost.

    python3 bench/cluster.py [--seconds 5] [--rate 1000]

Starts nats-server and two chat examples (release, one worker each) bridged through it, and
measures three paths with the same client (one publisher process, one subscriber process,
timestamps from CLOCK_MONOTONIC in the payload):

- nats: a plain NATS publisher to a plain NATS subscriber (the broker's floor);
- smoke -> nats: a WebSocket client publishing to node A's room, a plain NATS subscriber on
  the room's subject (the bridge's publishing half);
- smoke -> smoke: the same publisher, a WebSocket subscriber on node B (both halves).

Each path runs twice: paced at --rate messages per second for latency (p50/p99 from publish to
receipt), then as fast as the publisher can send, for throughput (messages per second the
subscriber received). CPU per message is utime+stime of each smoke node and of nats-server
over the run, divided by the messages received: at a paced rate every message wakes every
process on its way, so those figures are mostly wake-ups; unpaced, they batch. The Python
publisher bounds the unpaced rates (a WebSocket client masks every frame in Python).

Needs nats-server (apt-get install nats-server) and python3-websockets.
"""

import argparse
import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
import time

from websockets.sync.client import connect

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, cpu_seconds, free_port, release, wait_listening  # noqa: E402

ROOM = "bench"
SUBJECT = f"smoke.topic.{ROOM}"
STAMP = re.compile(rb"T(\d+)")


class Nats:
    """Just enough of the NATS client protocol: CONNECT, SUB, PUB, and MSG/HMSG in."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        self.flush()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("nats-server hung up")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n + 2:
            self.buf += self.sock.recv(65536)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def flush(self):
        self.sock.sendall(b"PING\r\n")
        while (line := self.line()) != b"PONG":
            if line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def subscribe(self, subject):
        self.sock.sendall(f"SUB {subject} 1\r\n".encode())
        self.flush()

    def publish(self, subject, payload):
        self.sock.sendall(b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload))

    def message(self):
        while True:
            line = self.line()
            if line.startswith(b"MSG "):
                return self.exactly(int(line.split()[-1]))
            if line.startswith(b"HMSG "):
                headers, total = (int(n) for n in line.split()[-2:])
                return self.exactly(total)[headers:]
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")


def subscriber(kind, port, ready, results, count):
    """Receives `count` stamped messages (or until quiet for 5 s) and sends back when the first
    and last arrived and each one's latency in µs. Ready once it is sure to hear the publisher:
    subscribed on the broker, or for node B's WebSocket, once a probe has crossed (node B
    subscribes to the room on the broker a moment after its first subscriber joins)."""
    if kind == "ws":
        ws = contextlib.ExitStack().enter_context(connect(f"ws://127.0.0.1:{port}/ws?room={ROOM}&name=sub"))
        receive = lambda: ws.recv(timeout=5).encode()  # noqa: E731
        while b"probe" not in receive():
            pass
    else:
        nats = Nats(port)
        nats.subscribe(SUBJECT if kind == "bridge" else "bench.plain")
        nats.sock.settimeout(5)
        receive = nats.message
    ready.set()
    latencies, first, last = [], None, None
    try:
        while len(latencies) < count:
            payload = receive()
            stamp = STAMP.search(payload)
            if stamp is None:
                continue  # probes
            now = time.monotonic_ns()
            first = first or now
            last = now
            latencies.append((now - int(stamp.group(1))) / 1000)
    except Exception:
        pass  # quiet for 5 s: what arrived is the result
    results.put((latencies, first, last))


def publish_all(send, count, rate):
    """Sends `count` stamped messages, at `rate` per second (0: as fast as possible)."""
    start = time.monotonic()
    for i in range(count):
        if rate:
            due = start + i / rate
            while time.monotonic() < due:
                time.sleep(max(0.0, due - time.monotonic() - 0.0002))
        send(b"T%d" % time.monotonic_ns())


def run_path(path, nats_port, node_a, node_b, count, rate, pids):
    """One measurement: latencies, received rate, and CPU seconds of each process in `pids`."""
    kind, port = {"nats": ("nats", nats_port), "smoke -> nats": ("bridge", nats_port),
                  "smoke -> smoke": ("ws", node_b)}[path]
    ready, results = multiprocessing.Event(), multiprocessing.Queue()
    receiver = multiprocessing.Process(target=subscriber, args=(kind, port, ready, results, count))
    receiver.start()
    if path == "nats":
        nats = Nats(nats_port)
        send = lambda payload: nats.publish("bench.plain", payload)  # noqa: E731
        done = nats.flush
    else:
        ws = contextlib.ExitStack().enter_context(connect(f"ws://127.0.0.1:{node_a}/ws?room={ROOM}&name=pub"))
        # The publisher hears its own messages: read them so they do not pile up.
        threading.Thread(target=drain, args=(ws,), daemon=True).start()
        send = lambda payload: ws.send(payload.decode())  # noqa: E731
        done = ws.close
    for _ in range(100):
        if ready.wait(0.1):
            break
        if path == "smoke -> smoke":
            send(b"probe")
    else:
        raise RuntimeError(f"{path}: the subscriber never heard the publisher")
    before = {name: cpu_seconds([pid]) for name, pid in pids.items()}
    publish_all(send, count, rate)
    latencies, first, last = results.get(timeout=60)
    after = {name: cpu_seconds([pid]) for name, pid in pids.items()}
    done()
    receiver.join(10)
    received = len(latencies)
    cpu = {name: (after[name] - before[name]) * 1e6 / max(received, 1) for name in pids}
    seconds = (last - first) / 1e9 if received > 1 else float("nan")
    return latencies, received, received / seconds if seconds else 0.0, cpu


def drain(ws):
    try:
        while True:
            ws.recv()
    except Exception:
        pass  # closed


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")


def cluster_table(seconds, rate):
    """Starts the broker and the nodes, measures, returns the markdown table's lines."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "smoke-examples", "--bin", "chat"],
                   cwd=ROOT, check=True)
    nats_port, node_a, node_b = free_port(), free_port(), free_port()
    processes = [subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(nats_port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        wait_listening(nats_port)
        for port in (node_a, node_b):
            env = dict(os.environ, SMOKE_HTTP=f"127.0.0.1:{port}", SMOKE_THREADS="1",
                       SMOKE_CLUSTER=f"nats://127.0.0.1:{nats_port}")
            processes.append(subprocess.Popen([release("chat")], env=env, stdout=subprocess.DEVNULL))
            wait_listening(port)
        time.sleep(1)  # the bridges connect
        pids = {"node A": processes[1].pid, "node B": processes[2].pid, "nats-server": processes[0].pid}
        lines = ["| path | p50 µs | p99 µs | CPU µs/msg (node A, node B, nats-server) | unpaced msgs/s | "
                 "CPU µs/msg unpaced | lost |",
                 "|---|---:|---:|---|---:|---|---:|"]
        for path in ("nats", "smoke -> nats", "smoke -> smoke"):
            paced = run_path(path, nats_port, node_a, node_b, rate * seconds, rate, pids)
            flood = run_path(path, nats_port, node_a, node_b, rate * seconds * 5, 0, pids)
            lost = rate * seconds * 6 - paced[1] - flood[1]
            cpus = [", ".join(f"{cpu[name]:.1f}" for name in pids) for cpu in (paced[3], flood[3])]
            lines.append(f"| {path} | {percentile(paced[0], 50):.0f} | {percentile(paced[0], 99):.0f} | {cpus[0]} | "
                         f"{flood[2]:,.0f} | {cpus[1]} | {lost} |")
        return lines
    finally:
        for process in reversed(processes):  # the nodes first: the broker's end is not news
            process.terminate()
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    print("\n".join(cluster_table(args.seconds, args.rate)))


if __name__ == "__main__":
    main()
