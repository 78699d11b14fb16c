#!/bin/sh
# SPDX-License-Identifier: MIT
# Run by test_deb.py with `unshare -m` as root: a fresh root made of this machine's own
# installed packages (an overlay of / whose writes go to a tmpfs, so the machine is not
# touched), the built .debs installed there with dpkg, and what they installed run.
# $1: a scratch directory; $2: the directory of the .debs; $3: the stand-in python3-halo .deb.
set -eu
t=$1 debs=$2 standin=$3
mount -t tmpfs tmpfs "$t"
mkdir "$t/upper" "$t/work" "$t/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$t/upper,workdir=$t/work" "$t/root"
r=$t/root
mount -t proc proc "$r/proc"
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/tmp"
mount -t tmpfs tmpfs "$r/run"
mkdir "$r/tmp/debs"
cp "$debs"/libhalo0_*.deb "$debs"/libhalo-dev_*.deb "$debs"/halod_*.deb "$debs"/haloctl_*.deb \
    "$debs"/python3-libhalo_*.deb "$standin" "$r/tmp/debs/"
cp "$(dirname "$0")/../../examples/counter.c" "$r/tmp/"
for p in libhalo0 libhalo-dev halod haloctl python3-libhalo python3-halo; do
    if chroot "$r" dpkg-query -W "$p" >/dev/null 2>&1; then
        echo "already installed before the test: $p"; exit 1
    fi
done
echo "== dpkg -i"
chroot "$r" sh -c 'DEBIAN_FRONTEND=noninteractive dpkg -i /tmp/debs/*.deb' 2>&1
echo "== dpkg -S"
chroot "$r" dpkg -S /usr/bin/halod /usr/bin/haloctl /usr/lib/halo/python/halo/__init__.py \
    /usr/lib/python3/dist-packages/halo/__init__.py
echo "== versions"
chroot "$r" /usr/bin/halod --version
chroot "$r" /usr/bin/haloctl --version
echo "== check"
chroot "$r" /usr/bin/halod --check /etc/halo/cluster.yaml.example 2>&1
echo "== python"
chroot "$r" env PYTHONPATH=/usr/lib/halo/python /usr/bin/python3 -c \
    'from halo import component, ha; print("halo", component.__file__, ha.__file__)'
chroot "$r" env -u PYTHONPATH /usr/bin/python3 -c 'import halo; print("spinner", halo.__file__)'
echo "== cc"
chroot "$r" sh -c 'cc -o /tmp/counter /tmp/counter.c $(pkg-config --cflags --libs halo) && ldd /tmp/counter | grep libhalo'
echo "== serve"
chroot "$r" /usr/bin/python3 - <<'PY'
import os, socket, subprocess, time
os.makedirs("/tmp/s")
port = 17000 + os.getpid() % 1000
with open("/tmp/s/c.yaml", "w") as f:
    f.write(f"""service-groups:
  counter:
    redundancy: no-redundancy
    component: {{command: /tmp/counter}}
    service-units: {{counter-a: {{}}}}
    service-instances:
      counter: {{csis: {{counter: {{attributes: {{port: "{port}"}}}}}}}}
""")
log = open("/tmp/s/log", "w")
d = subprocess.Popen(["/usr/bin/halod", "--state-dir", "/tmp/s", "--socket", "/tmp/s/sock", "--http", "none",
                      "/tmp/s/c.yaml"], stdout=log, stderr=subprocess.STDOUT)
answer, deadline = None, time.monotonic() + 30
while answer is None and time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"INCR k\n")
            answer = s.makefile().readline().strip()
    except OSError:
        time.sleep(0.1)
st = subprocess.run(["/usr/bin/haloctl", "-s", "/tmp/s/sock", "status"], capture_output=True, text=True)
print(st.stdout.strip())
d.terminate()
print("halod exit", d.wait(30))
print("counter answered", answer)
if answer != "1":
    print(open("/tmp/s/log").read())
PY
