# SPDX-License-Identifier: MIT
# Helpers of the demos (examples/demo.sh, examples/recovery-demo.sh), sourced
# after they set $work (their temporary directory, with halod.log in it).
halod_pid=

step() {
    if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
    if [ -t 0 ]; then read -r -p "   (press Enter) " _; fi
}
cleanup() {
    if [ -n "$halod_pid" ] && kill -0 "$halod_pid" 2>/dev/null; then
        kill -TERM "$halod_pid" 2>/dev/null || true
        wait "$halod_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Sends one line to a service on loopback, prints the answer.
ask() { # PORT LINE
    python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall((sys.argv[2] + "\n").encode())
    print(s.makefile().readline().strip())
except OSError as e:
    print(f"(no answer: {e.strerror})")
PY
}
wait_for() { # DESCRIPTION COMMAND...
    local what=$1; shift
    for _ in $(seq 1 200); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.05
    done
    echo "demo: timed out waiting for $what" >&2
    tail -n 30 "$work/halod.log" >&2
    exit 1
}
