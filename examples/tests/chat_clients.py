"""Many python `websockets` clients against the chat example: every client in a room receives
every message published there exactly once, in order per publisher.

usage: chat_clients.py HOST:PORT CLIENTS ROOMS PUBLISHERS_PER_ROOM MESSAGES
Prints one summary line and exits 0 on success; on failure prints why and exits 1.
"""

import asyncio
import sys

from websockets.asyncio.client import connect


async def main(addr, clients, rooms, publishers_per_room, messages):
    sockets = []
    # Connect in batches, so the listen backlog is not the thing under test.
    for start in range(0, clients, 50):
        batch = [
            # An unbounded queue: with the default, a client that stops reading stops taking
            # frames off the socket, and its close waits out `close_timeout`.
            connect(f"ws://{addr}/ws?room=r{i % rooms}&name=c{i}", open_timeout=30, max_size=None, max_queue=None)
            for i in range(start, min(start + 50, clients))
        ]
        sockets.extend(await asyncio.gather(*batch))
    # Everyone is subscribed before the first publication: subscription happens before the 101.
    publishers = {i for i in range(clients) if i // rooms < publishers_per_room}
    expected = publishers_per_room * messages
    received = [[] for _ in range(clients)]

    async def listen(i):
        ws = sockets[i]
        while len(received[i]) < expected:
            text = await asyncio.wait_for(ws.recv(), timeout=60)
            if not text.startswith("* "):
                received[i].append(text)

    async def publish(i):
        for n in range(messages):
            await sockets[i].send(f"{n}")

    listeners = [asyncio.create_task(listen(i)) for i in range(clients)]
    await asyncio.gather(*(publish(i) for i in publishers))
    await asyncio.gather(*listeners)
    # Exactly once: nothing more arrives after the expected count.
    await asyncio.sleep(0.3)
    extra = 0
    for i, ws in enumerate(sockets):
        try:
            while True:
                text = await asyncio.wait_for(ws.recv(), timeout=0.001)
                if not text.startswith("* "):
                    extra += 1
        except (asyncio.TimeoutError, TimeoutError):
            pass
    failures = []
    for i in range(clients):
        room = i % rooms
        per_publisher = {}
        for line in received[i]:
            name, _, n = line.partition(": ")
            per_publisher.setdefault(name, []).append(int(n))
        want = {f"c{p}" for p in publishers if p % rooms == room}
        if set(per_publisher) != want:
            failures.append(f"client {i}: heard {sorted(per_publisher)}, expected {sorted(want)}")
        for name, numbers in per_publisher.items():
            if numbers != list(range(messages)):
                failures.append(f"client {i}: from {name} got {numbers[:10]}... ({len(numbers)})")
    await asyncio.gather(*(ws.close() for ws in sockets))
    if extra or failures:
        print(f"{extra} extra messages; {len(failures)} failures: {failures[:5]}")
        return 1
    total = sum(len(r) for r in received)
    print(f"ok: {clients} clients in {rooms} rooms received {total} messages, each once and in order")
    return 0


if __name__ == "__main__":
    addr, *numbers = sys.argv[1:]
    sys.exit(asyncio.run(main(addr, *map(int, numbers))))
