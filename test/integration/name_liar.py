# SPDX-License-Identifier: MIT
"""A component that lies about who it is to the name service (test_names.py).

halod runs it as a component: its pid is the component's, so it registers on a raw HA link
(rawlink.py), then claims another component's name in its name service requests, and writes
halod's answers to the file given, one "WHAT ERROR" line each.  It answers CSI sets so that
the AMF keeps it."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import rawlink  # noqa: E402
from rawlink import field_bytes, field_varint, parse, unzigzag  # noqa: E402


def name_entry(ctx, name, ref=b"r", comp=None):
    body = field_bytes(1, ctx) + field_bytes(2, name) + field_bytes(3, ref) + field_varint(5, 1)
    return body + (field_bytes(6, comp) if comp else b"")


def name_register(seq, entry):
    return field_bytes(60, field_varint(1, seq) + field_bytes(2, entry))


def name_deregister(seq, ctx, name, comp=None):
    body = field_varint(1, seq) + field_bytes(2, ctx) + field_bytes(3, name)
    return field_bytes(61, body + (field_bytes(4, comp) if comp else b""))


def main():
    out, other = sys.argv[1], sys.argv[2]
    me = os.environ["HALO_COMPONENT"]
    link = rawlink.RawLink(os.environ["HALO_SOCKET"])
    link.s.settimeout(None)
    assert link.hello() == 0
    link.send(rawlink.register(me, seq=1))
    asks = {2: ("REGISTER_AS_OTHER", name_register(2, name_entry("svc", "lie", comp=other))),
            3: ("DEREGISTER_OTHERS", name_deregister(3, "svc", "db", comp=other)),
            4: ("REGISTER_ENTRYPOINT", name_register(4, name_entry("entrypoint", "reg"))),
            5: ("REGISTER_AS_ITSELF", name_register(5, name_entry("svc", "liar", comp=me)))}
    sent = False
    while True:
        pkt = link.recv()
        if not pkt:
            return
        msg = parse(pkt)
        if 30 in msg:  # CsiSet: accepted
            link.send(rawlink.response(parse(msg[30][0])[1][0]))
        elif 31 in msg:  # CsiRemove
            link.send(rawlink.response(parse(msg[31][0])[1][0]))
        elif 3 in msg:
            r = parse(msg[3][0])
            seq, err = r.get(1, [0])[0], unzigzag(r.get(2, [0])[0])
            if seq in asks:
                with open(out, "a") as f:
                    f.write(f"{asks[seq][0]} {err}\n")
        if not sent:
            sent = True
            for _, data in asks.values():
                link.send(data)


if __name__ == "__main__":
    main()
