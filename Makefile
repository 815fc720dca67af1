# pyd: build the one-file engine, demo it, test it.
PYTHON ?= python3
PYD_SOURCES := $(shell find pyd -name '*.py' 2>/dev/null)
EXECD_SOURCES := $(wildcard execd/*)
TEST_TIMEOUT ?= 300
# pytest-timeout (installed by .ci/run) bounds each test, fixtures included; without it, no bound.
PYTEST_TIMEOUT := $(shell $(PYTHON) -c 'import pytest_timeout' 2>/dev/null && echo --timeout=$(TEST_TIMEOUT))
PYTEST_ARGS ?=
# the machine `make build` builds for: x86_64 (dist/pyd) or aarch64 (dist/pyd-aarch64, cross-compiled)
ARCH ?= x86_64
DIST_x86_64 := dist/pyd
DIST_aarch64 := dist/pyd-aarch64

.PHONY: all build build-all deps cross-deps host-deps execd demo test test-unit test-hosts test-hosts-arm64 bench clean

all: build

build: $(DIST_$(ARCH))

build-all: dist/pyd dist/pyd-aarch64

dist/pyd: build.py $(PYD_SOURCES) $(EXECD_SOURCES)
	$(PYTHON) build.py

dist/pyd-aarch64: build.py scripts/foreign_debs.py $(PYD_SOURCES) $(EXECD_SOURCES) | cross-deps
	$(PYTHON) build.py --arch aarch64

# the helper alone, to run pyd from the source tree
execd: pyd/execd

pyd/execd: $(EXECD_SOURCES)
	$(PYTHON) build.py --execd-only

# apt and pip packages for building and testing; a quick no-op when everything is installed
deps:
	bash scripts/install-deps.sh

# the aarch64 cross compiler and C library (libseccomp for arm64 comes from Debian's .debs, under build/)
cross-deps:
	bash scripts/install-deps.sh --cross aarch64

demo: deps dist/pyd
	bash scripts/demo.sh

test: deps cross-deps dist/pyd dist/pyd-aarch64
	$(PYTHON) -m pytest -q $(PYTEST_TIMEOUT) $(PYTEST_ARGS) tests

# pyd inside Debian VMs (qemu, no network device): one boot per host, each host x scenario a test.
# Not part of `make test` (pytest.ini keeps tests/hosts out of its collection).
host-deps:
	bash scripts/install-host-deps.sh

test-hosts: host-deps dist/pyd dist/pyd-aarch64
	$(PYTHON) -m pytest -q $(PYTEST_ARGS) tests/hosts

# the emulated arm64 guest alone (a fresh image takes ~3-4 min, its boot and scenarios ~1.5 min)
test-hosts-arm64: host-deps dist/pyd dist/pyd-aarch64
	PYD_HOSTS=bookworm-arm64 $(PYTHON) -m pytest -q $(PYTEST_ARGS) tests/hosts

# the pure parts alone: no root, no dist/pyd, seconds
test-unit:
	$(PYTHON) -m pytest -q $(PYTEST_ARGS) tests/unit

bench: dist/pyd
	@if [ -f bench/run.py ]; then $(PYTHON) bench/run.py $(BENCH_ARGS); else echo "make bench: bench/run.py is not written yet"; fi

clean:
	rm -rf dist build pyd/execd .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
