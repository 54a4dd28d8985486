"""Sends what a UDP socket on SERVER:PORT must never see, then what it must: the packet ring
in front of it must agree. Run in the client's network namespace by tests/packet_ring.rs.

    ring_frames.py SERVER OTHER PORT COUNT

- COUNT datagrams whose UDP checksum is wrong (one bit flipped), through a raw socket;
- COUNT datagrams to OTHER, an address the server's host does not have but whose link-layer
  address is the server's (the test adds that neighbour entry), so the frames reach its
  interface addressed to it;
- COUNT datagrams of 3000 bytes, above the server's max_datagram;
- COUNT good datagrams, each answered with its own payload.
Prints "ok" and exits 0, or says what went wrong.
"""

import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def damaged(src, dst, port, payload):
    """A UDP header and payload whose checksum is right but for one flipped payload bit."""
    length = 8 + len(payload)
    header = struct.pack("!HHHH", 40000, port, length, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 17, length)
    good = checksum(pseudo + header + payload) or 0xFFFF
    flipped = bytes([payload[0] ^ 0x01]) + payload[1:]
    return struct.pack("!HHHH", 40000, port, length, good) + flipped


def main(server, other, port, count):
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect((server, port))
    src = probe.getsockname()[0]
    for n in range(count):
        raw.sendto(damaged(src, server, port, f"damaged {n}".encode()), (server, 0))
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for n in range(count):
        plain.sendto(f"elsewhere {n}".encode(), (other, port))
    for n in range(count):
        plain.sendto(bytes([n]) * 3000, (server, port))
    good = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    good.settimeout(5)
    good.connect((server, port))
    for n in range(count):
        payload = f"good {n}".encode()
        good.send(payload)
        back = good.recv(65536)
        if back != payload:
            print(f"expected {payload!r}, got {back!r}")
            return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
