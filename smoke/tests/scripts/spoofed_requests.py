"""Sends one netcode connection request COUNT times, each from a different forged source
address, through a raw socket: what a flood of spoofed requests looks like to a game server.
Run in the client's network namespace by tests/game_network.rs.

    spoofed_requests.py SERVER PORT REQUEST_FILE COUNT PREFIX

The sources are PREFIX.10 to PREFIX.249 with varied ports: hosts that do not exist, so nothing
the server answers reaches anyone. Prints "sent N" and exits 0.
"""

import socket
import struct
import sys


def main(server, port, request_file, count, prefix):
    with open(request_file, "rb") as f:
        request = f.read()
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    length = 8 + len(request)
    for n in range(count):
        source = f"{prefix}.{10 + n % 240}"
        # IPv4 with IP_HDRINCL: the kernel fills in the header checksum and total length.
        header = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + length, n & 0xFFFF, 0, 64, socket.IPPROTO_UDP, 0,
            socket.inet_aton(source), socket.inet_aton(server),
        )
        # A zero UDP checksum means "none" over IPv4.
        udp = struct.pack("!HHHH", 20000 + n % 40000, port, length, 0)
        raw.sendto(header + udp + request, (server, 0))
    print(f"sent {count}")


if __name__ == "__main__":
    server, port, request_file, count, prefix = sys.argv[1:6]
    main(server, int(port), request_file, int(count), prefix)
