# SPDX-License-Identifier: MIT
"""The chaos checker's death watcher: a process of its own (no other thread
competes with it for the interpreter), raised to SCHED_FIFO when allowed, that
learns when each test component dies, independently of halo.

Every testcomp in `intervals` mode connects to the Unix socket given as
argv[1] and sends "<comp> <pid>\\n", then keeps the connection open.  The
kernel closes it when the process ends, however it ends (SIGKILL included),
so the end of file is the process's death.  Prints, flushed line by line:

    UP <comp> <pid> <t>
    DOWN <comp> <pid> <t>

<t> is time.monotonic() (CLOCK_MONOTONIC, the clock the components log with).
It exits when its standard input is closed."""
import os
import selectors
import socket
import sys
import time


def main():
    path = sys.argv[1]
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except (OSError, AttributeError):
        try:
            os.nice(-10)
        except OSError:
            pass
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(256)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, "listen")
    sel.register(sys.stdin, selectors.EVENT_READ, "stdin")
    out = sys.stdout
    out.write("READY\n")
    out.flush()
    conns = {}  # socket -> [buffer, comp, pid]
    while True:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 4096):
                    return
                continue
            if key.data == "listen":
                c, _ = lsock.accept()
                conns[c] = [b"", None, None]
                sel.register(c, selectors.EVENT_READ, "conn")
                continue
            c = key.fileobj
            try:
                data = c.recv(4096)
            except OSError:
                data = b""
            now = time.monotonic()
            st = conns[c]
            if data:
                st[0] += data
                if st[1] is None and b"\n" in st[0]:
                    words = st[0].split(b"\n", 1)[0].decode(errors="replace").split()
                    if len(words) == 2:
                        st[1], st[2] = words[0], int(words[1])
                        out.write(f"UP {st[1]} {st[2]} {now:.6f}\n")
                        out.flush()
                continue
            sel.unregister(c)
            c.close()
            del conns[c]
            if st[1] is not None:
                out.write(f"DOWN {st[1]} {st[2]} {now:.6f}\n")
                out.flush()


if __name__ == "__main__":
    main()
