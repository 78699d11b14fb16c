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

# Prints a base port with COUNT free loopback ports from it, for the demo's services.  Given in
# the environment (ENV_NAME), they must be free: else it names the busy one and the demo stops at
# once.  Not given: DEFAULT if free, else ports the kernel finds free, saying so on stderr.
pick_ports() { # ENV_NAME DEFAULT COUNT
    python3 - "$1" "$2" "$3" <<'PY'
import os, socket, sys
name, default, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def busy(base):
    """The first port of base..base+count-1 something is bound to (TIME_WAIT does not count), or None."""
    for p in range(base, base + count):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return p
    return None

given = os.environ.get(name)
if given:
    if not given.isdigit() or not 0 < int(given) <= 65536 - count:
        sys.exit(f"demo: {name}={given} is not a port number")
    taken = busy(int(given))
    if taken:
        sys.exit(f"demo: port {taken} is busy ({name}={given}): free it, or set {name} to another port")
    print(given)
    sys.exit(0)
taken = busy(default)
if taken is None:
    print(default)
    sys.exit(0)
for _ in range(100):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        base = s.getsockname()[1]
    if base <= 65536 - count and busy(base) is None:
        ports = str(base) if count == 1 else f"{base}-{base + count - 1}"
        print(f"demo: port {taken} is busy: using {ports} instead (set {name} to choose)", file=sys.stderr)
        print(base)
        sys.exit(0)
sys.exit(f"demo: port {taken} is busy and no {count} free ports were found; set {name}")
PY
}

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
