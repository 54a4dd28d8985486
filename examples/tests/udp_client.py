"""Sends COUNT numbered datagrams to HOST:PORT, paced (a window of 8 in flight), and checks that
each comes back with its own payload. Prints "ok: N echoed" and exits 0, or says what went wrong.

usage: udp_client.py HOST PORT COUNT
"""

import socket
import sys


def main(host, port, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.connect((host, port))
    echoed = 0
    window = 8
    for start in range(0, count, window):
        sent = [f"datagram {n} ".encode() + bytes(range(n % 200)) for n in range(start, min(start + window, count))]
        for payload in sent:
            s.send(payload)
        for payload in sent:
            back = s.recv(65536)
            if back != payload:
                print(f"expected {payload[:20]!r}..., got {back[:20]!r}...")
                return 1
            echoed += 1
    print(f"ok: {echoed} echoed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
