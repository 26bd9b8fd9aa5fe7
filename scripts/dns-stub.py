#!/usr/bin/env python3
"""A cluster DNS stand-in for check-deploy: answers A and SRV questions over UDP for the names it is given, as
Kubernetes' DNS answers for a headless Service's pods, so that the in-cluster HAProxy configuration can be run
outside a cluster. Nothing else: every other name is NXDOMAIN.

    dns-stub.py NAME=ADDRESS... [SRV=TARGET:PORT...]

A NAME=ADDRESS gives an A record; SRV=TARGET:PORT adds TARGET (which needs an A record) with PORT to the SRV answer
for SRV_NAME (the environment variable). Listens on 127.0.0.1 at a free port, prints the port, and serves until killed.
"""
import os
import socket
import struct
import sys


def encode(name):
    return b"".join(bytes([len(label)]) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"


def question(message):
    """The first question's name (lower case, no final dot), type, and the offset just past it."""
    labels, offset = [], 12
    while message[offset]:
        length = message[offset]
        labels.append(message[offset + 1 : offset + 1 + length].decode().lower())
        offset += 1 + length
    qtype, _ = struct.unpack("!HH", message[offset + 1 : offset + 5])
    return ".".join(labels), qtype, offset + 5


def record(name, rtype, data, ttl=5):
    return name + struct.pack("!HHIH", rtype, 1, ttl, len(data)) + data


A, SRV = 1, 33


def answer(message, addresses, srv_name, srv_targets):
    name, qtype, end = question(message)
    answers, extra = [], []
    if qtype == A and name in addresses:
        answers.append(record(b"\xc0\x0c", A, socket.inet_aton(addresses[name])))
    elif qtype == SRV and name == srv_name:
        for target, port in srv_targets:
            answers.append(record(b"\xc0\x0c", SRV, struct.pack("!HHH", 0, 100, port) + encode(target)))
            extra.append(record(encode(target), A, socket.inet_aton(addresses[target])))
    known = name in addresses or name == srv_name
    # QR, AA and the question's RD; NXDOMAIN (3) for a name that does not exist.
    flags = 0x8400 | (struct.unpack("!H", message[2:4])[0] & 0x0100) | (0 if known else 3)
    header = message[:2] + struct.pack("!HHHHH", flags, 1, len(answers), 0, len(extra))
    return header + message[12:end] + b"".join(answers) + b"".join(extra)


def main():
    addresses, srv_targets = {}, []
    for argument in sys.argv[1:]:
        key, value = argument.split("=", 1)
        if key == "SRV":
            target, port = value.rsplit(":", 1)
            srv_targets.append((target.lower(), int(port)))
        else:
            addresses[key.lower()] = value
    srv_name = os.environ.get("SRV_NAME", "").lower()
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    print(server.getsockname()[1], flush=True)
    while True:
        message, client = server.recvfrom(4096)
        try:
            server.sendto(answer(message, addresses, srv_name, srv_targets), client)
        except (IndexError, struct.error, UnicodeDecodeError):
            pass  # not a question this stand-in understands: no answer, as from a lost packet


if __name__ == "__main__":
    main()
