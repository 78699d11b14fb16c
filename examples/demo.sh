#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo: halo's main job on one machine.  Starts halod with the counter
# example in 2N, kills the ACTIVE with SIGKILL, shows the STANDBY taking over
# (with the measured failover time) and the failed one coming back as
# STANDBY, then stops everything.  Pauses between steps only on a terminal.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
halod=$build/src/halod/halod
haloctl=$build/src/haloctl/haloctl
work=$(mktemp -d /tmp/halo-demo.XXXXXX)
sock=$work/halod.sock
export HALO_SOCKET=$sock
. "$top/examples/demo-lib.sh"
# The service's port and the two instances' standby ports: the example's, or free ones.
port=$(pick_ports HALO_DEMO_PORT 7700 1)
standby=$(pick_ports HALO_DEMO_STANDBY_PORT 7711 2)
status_field() { # SI FIELD
    "$haloctl" status --json | python3 -c '
import json, sys
si, field = sys.argv[1], sys.argv[2]
for sg in json.load(sys.stdin)["service_groups"]:
    for x in sg["service_instances"]:
        if x["name"] == si:
            print(x[field] or "")' "$1" "$2"
}
fully_assigned() { [ -n "$(status_field counter active)" ] && [ -n "$(status_field counter standby)" ]; }

# The example description, pointed at this build and this run's files.
sed -e "s|command: .*counter$|command: $build/examples/counter|" \
    -e "s|/tmp/halo-counter.state|$work/counter.state|" \
    -e "s|\"7700\"|\"$port\"|" -e "s|\"7711\"|\"$standby\"|" -e "s|\"7712\"|\"$((standby + 1))\"|" \
    "$top/examples/counter.yaml" > "$work/counter.yaml"

step "Check the cluster description"
"$halod" --check "$work/counter.yaml"

step "Start halod with the counter service in 2N (log: $work/halod.log)"
"$halod" --state-dir "$work/state" --socket "$sock" "$work/counter.yaml" >"$work/halod.log" 2>&1 &
halod_pid=$!
wait_for "the counter service to be ACTIVE and STANDBY" fully_assigned
"$haloctl" status

step "Use the service: the ACTIVE instance listens on port $port"
for _ in 1 2 3; do echo "INCR visits -> $(ask "$port" "INCR visits")"; done

active=$(status_field counter active)
victim=$("$haloctl" status --json | python3 -c '
import json, sys
for sg in json.load(sys.stdin)["service_groups"]:
    for su in sg["service_units"]:
        if su["name"] == sys.argv[1]:
            print(su["components"][0]["pid"])' "$active")

step "Kill the ACTIVE ($active, pid $victim) with SIGKILL"
lines_before=$(wc -l < "$work/halod.log")
t0=$(python3 -c '
import os, signal, sys, time
t = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
os.kill(int(sys.argv[1]), signal.SIGKILL)
print(t)' "$victim")
new_active_line() { tail -n +"$((lines_before + 1))" "$work/halod.log" | grep -m1 "counter: ACTIVE at"; }
wait_for "the standby to take over" new_active_line
t1=$(new_active_line | awk '{print $NF}')
new_active=$(status_field counter active)
awk -v a="$t0" -v b="$t1" -v who="$new_active" \
    'BEGIN { printf "   %s answered CSI set ACTIVE %.3f ms after the SIGKILL\n", who, (b - a) / 1000 }'
echo "INCR visits -> $(ask "$port" "INCR visits")   (the count survived the failover)"

step "The failed unit is restarted and comes back as STANDBY"
back_as_standby() { [ "$(status_field counter standby)" = "$active" ]; }
wait_for "$active to return as STANDBY" back_as_standby
"$haloctl" status

step "Graceful switchover back to $active"
"$haloctl" switchover counter
echo "   ACTIVE is now $(status_field counter active)"
echo "INCR visits -> $(ask "$port" "INCR visits")"

step "Stop halod: terminate callbacks, then cleanup"
pids=$("$haloctl" status --json | python3 -c '
import json, sys
print(" ".join(str(c["pid"]) for sg in json.load(sys.stdin)["service_groups"]
               for su in sg["service_units"] for c in su["components"] if c["pid"]))')
kill -TERM "$halod_pid"
wait "$halod_pid"
rc=$?
halod_pid=
left=""
for p in $pids; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
if [ -n "$left" ]; then echo "demo: processes left behind:$left" >&2; exit 1; fi
echo "   halod exited with status $rc; no component process is left."
echo
echo "Demo complete."
