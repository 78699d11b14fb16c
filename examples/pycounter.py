#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""pycounter: a 2N counter service written in Python on halo.component (docs/python.md).

CSI attributes: "port" (required), "bind" (default 127.0.0.1), "key" (the CDB path of
the count, default /pycounter/count).

  ACTIVE     listens on bind:port.  "INCR" -> the new count, "GET" -> the count,
             "WHO" -> "<component> ACTIVE".  The count lives in halod's configuration
             database, so the instance that takes over goes on from it.
  STANDBY    does not listen; it follows the count through a CDB subscription
             (printed on stderr, which halod logs).
  QUIESCING  stops accepting, then tells halod it is done.

One thread: a selectors loop over the handle's fileno(), the listener and the clients.
Run it with examples/pycounter.yaml.
"""
import os
import selectors
import socket
import sys

from halo import component as hc


class Counter:
    def __init__(self):
        self.sel = selectors.DefaultSelector()
        self.name = os.environ.get("HALO_COMPONENT", "pycounter")
        self.state = None
        self.listener = None
        self.key = "/pycounter/count"
        self.h = hc.open(csi_set=self.csi_set, csi_remove=self.csi_remove, terminate=self.terminate,
                         healthcheck=self.healthcheck)
        self.sel.register(self.h.fileno(), selectors.EVENT_READ, self.dispatch)

    def log(self, *words):
        # One write for the whole line: print() writes its words one by one, and the other
        # instance, sharing halod's log, could write between them.
        line = " ".join([f"pycounter {self.name}:", *map(str, words)]) + "\n"
        os.write(2, line.encode())

    # -- halod's callbacks: run by dispatch() on this thread ----------------
    def csi_set(self, h, inv, comp, state, csi):
        if csi.csi_name:  # CSI_TARGET_ALL keeps the attributes we have
            self.key = csi.attributes.get("key", self.key)
        self.state = state
        self.log("now", {hc.ACTIVE: "ACTIVE", hc.STANDBY: "STANDBY", hc.QUIESCED: "QUIESCED",
                         hc.QUIESCING: "QUIESCING"}[state])
        if state == hc.ACTIVE:
            try:
                self.listen(csi.attributes.get("bind", "127.0.0.1"), int(csi.attributes["port"]))
            except (KeyError, ValueError, OSError) as e:
                self.log("cannot serve:", e)
                h.response(inv, -5)  # -EIO: halod fails this unit and tries the other
                return
            h.response(inv)
        elif state == hc.QUIESCING:
            self.unlisten()  # nothing is in progress once the listener is closed: done at once
            h.quiescing_complete(inv)
        else:
            self.unlisten()
            h.response(inv)

    def csi_remove(self, h, inv, comp, csi_name, flags):
        self.unlisten()
        self.state = None
        h.response(inv)

    def terminate(self, h, inv, comp):
        self.unlisten()
        self.log("terminated")  # before the answer: once answered, halod may exit before this is written
        h.response(inv)
        sys.exit(0)

    def healthcheck(self, h, inv, comp, key):
        h.response(inv)

    # -- the service -------------------------------------------------------
    def listen(self, bind, port):
        if self.listener:
            return
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind, port))
        s.listen()
        s.setblocking(False)
        self.listener = s
        self.sel.register(s, selectors.EVENT_READ, self.accept)

    def unlisten(self):
        if self.listener:
            self.sel.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def count(self):
        return int(self.h.cdb_get(self.key, b"0"))

    def answer(self, line):
        if line == "INCR":
            n = self.count() + 1
            with self.h.cdb_transaction() as t:
                t.set(self.key, str(n))
            return str(n)
        if line == "GET":
            return str(self.count())
        if line == "WHO":
            return f"{self.name} ACTIVE"
        return "ERR unknown command"

    def accept(self):
        c, _ = self.listener.accept()
        c.setblocking(False)
        self.sel.register(c, selectors.EVENT_READ, lambda: self.serve(c))

    def serve(self, c):
        data = c.recv(4096)
        if not data:
            self.sel.unregister(c)
            c.close()
            return
        out = "".join(self.answer(line.strip()) + "\n" for line in data.decode(errors="replace").splitlines())
        c.sendall(out.encode())

    def dispatch(self):
        self.h.dispatch()

    def run(self):
        self.h.register()
        self.h.healthcheck_start("default")
        self.h.cdb_subscribe(os.path.dirname(self.key) or "/", self.changed)
        while True:
            for k, _ in self.sel.select():
                k.data()

    def changed(self, h, sub, txid, changes):
        if self.state == hc.STANDBY:
            for c in changes:
                self.log("count", c.path, c.value.decode() if c.value is not None else "deleted")


if __name__ == "__main__":
    Counter().run()
