# SPDX-License-Identifier: MIT
# The front door: `make demo` runs halo's main job on one machine, `make check` runs the tests.
BUILD ?= build
BUILD_SAN ?= build-san

.PHONY: all deps build demo check check-fast check-etcd chaos bench deb deb-check deb-test clean

all: build

deps:
	@./tools/install-deps

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	@./examples/demo.sh $(BUILD)
	@./examples/recovery-demo.sh $(BUILD)
	@./examples/web-demo.sh $(BUILD)

# Unit and integration tests (halod's unit tests under valgrind too), a short chaos
# run (seed 202, 100 s), then the tests once more under ASan+UBSan (built meanwhile,
# in the background: test/run-all).
check: build
	@./test/run-all $(BUILD) $(BUILD_SAN)

check-fast: build
	@./test/run-all $(BUILD)

# The store conformance suite against a real etcd alone (make check runs it too).
check-etcd: build
	./$(BUILD)/test/unit/test-store-etcd

# The chaos checker (test/chaos/README.md): SECONDS of seeded faults on a 3-node cluster,
# then an independent check of the components' ACTIVE intervals, the CDB and the pool.
# SEED empty: a random one, printed first; a failed run's seed replays its faults.
# CUT=1: the halods reach etcd through proxies, and nodes are cut off too.
SECONDS ?= 120
SEED ?=
chaos: build
	@HALO_BUILD=$(abspath $(BUILD)) ./test/chaos/run --seconds $(SECONDS) $(if $(SEED),--seed $(SEED)) $(if $(CUT),--cut)

bench: build
	./bench/failover 50 && ./bench/coldstart 10 && ./bench/footprint

# The Debian packages (debian/; docs/configuration.md, "Debian packages"): dpkg-buildpackage on a copy of
# this tree in build-deb/src, so the tree stays clean; the .debs land in build-deb/.
deb:
	@./tools/install-deps deb
	rm -rf build-deb && mkdir -p build-deb/src
	tar -c --exclude='./build*' --exclude=./.git --exclude=__pycache__ . | tar -x -C build-deb/src
	cd build-deb/src && nice -n 10 dpkg-buildpackage -us -uc -b
	@ls build-deb/*.deb

# Builds the packages, checks them with lintian and dpkg -c, installs them in a
# fresh root and runs what they installed (test/deb/test_deb.py).
deb-check: deb
	@$(MAKE) --no-print-directory deb-test

# The checks of deb-check on the packages `make deb` built (.ci/run builds them while make check runs).
deb-test:
	HALO_DEB=$(abspath build-deb) /usr/bin/python3 -m pytest -q -p no:cacheprovider test/deb/test_deb.py

clean:
	rm -rf $(BUILD) $(BUILD_SAN) build-deb
