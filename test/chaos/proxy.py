# SPDX-License-Identifier: MIT
"""The chaos checker's fault-injecting TCP proxies for one node: a process of
its own with one proxy (test_cluster.Proxy, the integration tests' own) per
etcd member, so that the node's halod reaches etcd only through it.

    proxy.py PORT [PORT...]     # the etcd members' client ports

Prints the proxies' ports on one line, then reads commands from its standard
input: "cut" (every connection dropped, new ones held unanswered: a black hole)
and "heal"; answers each with "ok".  Exits when its standard input closes."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from test_cluster import Proxy  # noqa: E402


def main():
    proxies = [Proxy(int(p)) for p in sys.argv[1:]]
    print(" ".join(str(p.port) for p in proxies), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        for p in proxies:
            if cmd == "cut":
                p.cut()
            elif cmd == "heal":
                p.heal()
        print("ok", flush=True)
    for p in proxies:
        p.close()


if __name__ == "__main__":
    main()
