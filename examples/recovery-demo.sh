#!/bin/bash
# SPDX-License-Identifier: MIT
# The recovery of a restarted process (docs/recovery.md), on one machine:
# three instances of examples/replog in one pool.  Writes go through the
# ACTIVE; one instance is killed and misses some; halod restarts it, tells it
# it must recover and sends its failure vector; it replays what it missed
# from a peer and only then serves again.  Part of `make demo`.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
halod=$build/src/halod/halod
haloctl=$build/src/haloctl/haloctl
work=$(mktemp -d /tmp/halo-recovery-demo.XXXXXX)
sock=$work/halod.sock
export HALO_SOCKET=$sock
. "$top/examples/demo-lib.sh"
base=$(pick_ports HALO_DEMO_REPLOG_PORT 7801 3) # the example's ports, or free ones
pid_of() { # COMPONENT
    "$haloctl" status --json | python3 -c '
import json, sys
for sg in json.load(sys.stdin)["service_groups"]:
    for su in sg["service_units"]:
        for c in su["components"]:
            if c["name"] == sys.argv[1] and c["pid"]:
                print(c["pid"])' "$1"
}
port_a=$base port_b=$((base + 1)) port_c=$((base + 2))
serving() { [ "$(ask "$1" COUNT)" = "$2" ]; }

# The example description, pointed at this build and this run's files and ports.
sed -e "s|command: ../build/examples/replog|command: $build/examples/replog|" \
    -e "s|REPLOG_DIR: /tmp|REPLOG_DIR: $work|" \
    -e "s|7801|$port_a|g" -e "s|7802|$port_b|g" -e "s|7803|$port_c|g" \
    "$top/examples/replog.yaml" > "$work/replog.yaml"

step "Start halod with three replog instances in one recovery pool (log: $work/halod.log)"
"$halod" --state-dir "$work/state" --socket "$sock" --http none "$work/replog.yaml" >"$work/halod.log" 2>&1 &
halod_pid=$!
wait_for "the instances to serve" serving "$port_c" 0
"$haloctl" status

step "Write three entries through the ACTIVE (replog-a, port $port_a): every instance has them"
for i in 1 2 3; do echo "ADD entry-$i -> $(ask "$port_a" "ADD entry-$i")"; done
for p in $port_a $port_b $port_c; do echo "   port $p: COUNT -> $(ask "$p" COUNT)"; done

step "Kill replog-b (pid $(pid_of replog-b)) and write five more while it is down"
# One Python process kills it and writes at once: halod restarts replog-b after its restart
# delay (1 s), and a Python started after the kill may, on a loaded machine, write only then.
python3 - "$port_a" "$(pid_of replog-b)" <<'PY'
import os, signal, socket, sys
os.kill(int(sys.argv[2]), signal.SIGKILL)
for i in range(4, 9):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(f"ADD entry-{i}\n".encode())
    print(f"ADD entry-{i} -> {s.makefile().readline().strip()}")
PY

step "halod restarts replog-b: it gets its failure vector, replays what it missed, then serves"
wait_for "replog-b to catch up" serving "$port_b" 8
grep "replog replog-b:" "$work/halod.log" | tail -n 6 | sed 's/^/   /'
for p in $port_a $port_b $port_c; do echo "   port $p: COUNT -> $(ask "$p" COUNT)"; done
echo "   replog-b, entry 6 -> $(ask "$port_b" "GET 6")"

step "What the cluster recorded: replog-b's failure vector, and the broadcast queue"
"$haloctl" failvec replog-b
echo
"$haloctl" events | grep -E "SEQ|replog-b" | tail -n 8

step "Stop halod"
kill -TERM "$halod_pid"
wait "$halod_pid" || true
halod_pid=
echo
echo "Recovery demo complete."
