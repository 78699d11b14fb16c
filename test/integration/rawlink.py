# SPDX-License-Identifier: MIT
"""A raw HA-link client for tests that must send what libhalo never would.

Encodes the few protobuf messages it needs by hand (varints and
length-delimited fields, field numbers from src/proto/halo.proto)."""
import os
import socket

PROTOCOL_VERSION = 1


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    if isinstance(b, str):
        b = b.encode()
    return varint((num << 3) | 2) + varint(len(b)) + b


def hello(version=PROTOCOL_VERSION, client="rawlink/1"):
    body = field_varint(1, version) + field_varint(2, os.getpid()) + field_bytes(3, client)
    return field_bytes(1, body)


def register(comp, seq=1, proxy=None):
    body = field_varint(1, seq) + field_bytes(2, comp)
    return field_bytes(10, body + (field_bytes(3, proxy) if proxy else b""))


def error_report(comp, seq=1, recovery=3):  # HALO_RECOVERY_COMPONENT_FAILOVER
    return field_bytes(16, field_varint(1, seq) + field_bytes(2, comp) + field_varint(3, recovery))


def cdb_subscribe(sub_id, path, seq=1):
    return field_bytes(25, field_varint(1, seq) + field_varint(2, sub_id) + field_bytes(3, path))


def cdb_commit(ops, seq=1):
    """ops: [(path, value)]"""
    body = field_varint(1, seq)
    for path, value in ops:
        body += field_bytes(2, field_bytes(1, path) + field_bytes(2, value))
    return field_bytes(24, body)


def response(invocation, error=0, seq=0):
    body = field_varint(1, invocation) + field_varint(2, zigzag(error))
    if seq:
        body += field_varint(4, seq)
    return field_bytes(12, body)


def parse(buf):
    """Decodes one message level into {field: [values]} (bytes or ints)."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = _rd_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _rd_varint(buf, i)
        elif wt == 2:
            n, i = _rd_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type")
        out.setdefault(num, []).append(v)
    return out


def _rd_varint(buf, i):
    shift = 0
    n = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def unzigzag(n):
    return (n >> 1) ^ -(n & 1)


class RawLink:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.settimeout(5)
        self.s.connect(path)

    def send(self, data):
        self.s.send(data)

    def recv(self):
        """One packet, b'' on EOF."""
        return self.s.recv(128 * 1024)

    def hello(self, **kw):
        self.send(hello(**kw))
        msg = parse(self.recv())
        assert 2 in msg, f"expected HelloReply, got fields {list(msg)}"
        reply = parse(msg[2][0])
        return unzigzag(reply.get(1, [0])[0])

    def reply(self):
        """Waits for a Reply; returns (seq, error)."""
        while True:
            pkt = self.recv()
            if not pkt:
                raise EOFError("halod closed the link")
            msg = parse(pkt)
            if 3 in msg:
                r = parse(msg[3][0])
                return r.get(1, [0])[0], unzigzag(r.get(2, [0])[0])

    def closed_by_peer(self, timeout=5):
        """True when halod has closed the link (EOF or reset)."""
        self.s.settimeout(timeout)
        try:
            while True:
                if not self.s.recv(128 * 1024):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
