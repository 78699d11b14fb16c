#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo, part 3: an unmodified web server (python3 -m http.server) behind
# a floating address (ocf:heartbeat:IPaddr2), run 2N by halod in a network
# namespace this script creates on 169.254.0.0/16 and deletes at the end.  A
# client polls the floating address every 10 ms and prints what it sees while
# the ACTIVE server is killed and the whole unit fails over, then while an
# operator switches it back.  Needs root (a network namespace) and Debian's
# resource-agents; without them it says so and skips.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build}" && pwd)
halod=$build/src/halod/halod
haloctl=$build/src/haloctl/haloctl
if [ "$(id -u)" -ne 0 ]; then
    echo "web demo skipped: it needs root for its network namespace"
    exit 0
fi
if [ ! -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 ]; then
    echo "web demo skipped: ocf:heartbeat:IPaddr2 is missing (Debian package resource-agents)"
    exit 0
fi
work=$(mktemp -d /tmp/halo-web-demo.XXXXXX)
sock=$work/halod.sock
ns=halo-web-$$
vip=169.254.100.100
export HALO_SOCKET=$sock
. "$top/examples/demo-lib.sh"
client_pid=
web_cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null && wait "$client_pid" 2>/dev/null
    cleanup
    ip netns delete "$ns" 2>/dev/null || true
}
trap web_cleanup EXIT
in_ns() { ip netns exec "$ns" "$@"; }
status_field() { # SI FIELD
    "$haloctl" status --json | python3 -c '
import json, sys
for sg in json.load(sys.stdin)["service_groups"]:
    for x in sg["service_instances"]:
        if x["name"] == sys.argv[1]:
            print(x[sys.argv[2]] or "")' "$1" "$2"
}
served_by() { # what GET / on the floating address answers now, or nothing
    in_ns python3 -c '
import http.client, sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}:8080/", timeout=0.5).read().decode().strip())
except (OSError, http.client.HTTPException):
    pass' "$vip"
}

step "Create a network namespace with a link on 169.254.0.0/16"
ip netns add "$ns"
in_ns ip link set lo up
in_ns ip link add web0 type veth peer name web1
in_ns ip link set web1 up
in_ns ip link set web0 up
in_ns ip addr add 169.254.100.1/16 dev web0
echo "   namespace $ns: web0 169.254.100.1/16; the service's floating address will be $vip"

cp "$top/examples/web.yaml" "$work/web.yaml"
for u in web-a web-b; do mkdir -p "$work/$u" && echo "served by $u" > "$work/$u/index.html"; done

step "Check the description: halod runs IPaddr2's validate-all"
in_ns "$halod" --check "$work/web.yaml"

step "Start halod in the namespace (log: $work/halod.log)"
# nsenter, not ip netns exec: that one forks, and halod's pid would be ip's.
nsenter --net="/run/netns/$ns" "$halod" --state-dir "$work/state" --socket "$sock" "$work/web.yaml" \
    >"$work/halod.log" 2>&1 &
halod_pid=$!
assigned() { [ -n "$(status_field web active)" ] && [ -n "$(status_field web standby)" ] && [ -n "$(served_by)" ]; }
wait_for "the web service to answer on $vip" assigned
"$haloctl" status
echo "   GET http://$vip:8080/ -> $(served_by)"
echo "   $(in_ns ip -brief addr show web0)"

# The client: every 10 ms a GET to the floating address; one line per change.
in_ns python3 -u - "$vip" >>"$work/client.log" 2>&1 <<'PY' &
import http.client, sys, time, urllib.request
last, since = None, time.monotonic()
while True:
    try:
        now = urllib.request.urlopen(f"http://{sys.argv[1]}:8080/", timeout=0.2).read().decode().strip()
    except (OSError, http.client.HTTPException):  # a server killed mid-answer: IncompleteRead
        now = "no answer"
    if now != last:
        t = time.monotonic()
        if last is not None:
            print(f"   client: {last} for {1000 * (t - since):.0f} ms, then {now}", flush=True)
        last, since = now, t
    time.sleep(0.01)
PY
client_pid=$!

active=$(status_field web active)
victim=$("$haloctl" status --json | python3 -c '
import json, sys
for sg in json.load(sys.stdin)["service_groups"]:
    for su in sg["service_units"]:
        for c in su["components"]:
            if su["name"] == sys.argv[1] and c["name"].endswith("/www"):
                print(c["pid"])' "$active")

step "Kill the ACTIVE web server ($active/www, pid $victim) with SIGKILL"
kill -KILL "$victim"
moved() { [ "$(served_by)" = "served by web-b" ]; }
wait_for "the other unit to serve" moved
sleep 0.2
cat "$work/client.log"
echo "   $(in_ns ip -brief addr show web0)   (the address was removed by $active's IPaddr2 stop, added by web-b's start)"

step "Once $active is back as STANDBY, switch the service back to it"
back() { [ "$(status_field web standby)" = "$active" ]; }
wait_for "$active to return as STANDBY" back
: >"$work/client.log"
"$haloctl" switchover web
wait_for "$active to serve again" sh -c "[ \"\$(ip netns exec $ns python3 -c 'import urllib.request;print(urllib.request.urlopen(\"http://$vip:8080/\",timeout=0.5).read().decode().strip())' 2>/dev/null)\" = \"served by $active\" ]"
sleep 0.2
cat "$work/client.log"

step "Stop halod: the server is stopped and the address released"
kill "$client_pid" 2>/dev/null; wait "$client_pid" 2>/dev/null || true
client_pid=
pids=$("$haloctl" status --json | python3 -c '
import json, sys
print(" ".join(str(c["pid"]) for sg in json.load(sys.stdin)["service_groups"]
               for su in sg["service_units"] for c in su["components"] if c["pid"]))')
kill -TERM "$halod_pid"
wait "$halod_pid" || true
halod_pid=
for p in $pids; do
    if kill -0 "$p" 2>/dev/null; then echo "web demo: process $p left behind" >&2; exit 1; fi
done
if in_ns ip -brief addr show web0 | grep -q "$vip"; then
    echo "web demo: $vip is still on web0 after halod stopped; the end of halod's log:" >&2
    grep -v "GET / HTTP" "$work/halod.log" | tail -n 25 >&2
    exit 1
fi
echo "   $(in_ns ip -brief addr show web0)"
echo
echo "Web demo complete."
