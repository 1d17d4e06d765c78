# pysstp developer entry points. Everything runs from a project-local virtualenv (.venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: test lint check clean system-deps demo sorz-peer bench

# Debian packages the network tests use (namespaces, NAT rules). Installed only when missing, and only as
# root; elsewhere the tests that need them skip and say why.
DEBIAN_PACKAGES := iproute2 nftables iputils-ping procps sstp-client softether-vpnserver softether-vpncmd \
  iperf3 ethtool testssl.sh freeradius freeradius-utils hostapd eapoltest haproxy network-manager dbus

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# uvloop too: the asyncio tests then run on both event loops (tests/conftest.py), so the loop a user may
# choose with PYSSTP_EVENT_LOOP=uvloop stays tested; pysstp's default remains the standard one.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,nm,uvloop]'
	touch $(STAMP)

## system-deps: install the Debian packages above when running as root and one is missing
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  fi; \
	fi

# sorz's sstp-server, the peer of the tier-3 interop tests (tests/interop_sorz.py). Its 0.7 releases need
# Python >= 3.12 while pysstp's venv may be older, so it gets a venv of its own.
SORZ_VENV := .venv-sorz
SSTP_SERVER_VERSION := 0.7.2
SORZ_STAMP := $(SORZ_VENV)/.installed-$(SSTP_SERVER_VERSION)

## sorz-peer: install sstp-server into .venv-sorz with a Python 3.12 (skipped, and its tests skip, without one)
sorz-peer:
	@if [ -f $(SORZ_STAMP) ]; then exit 0; fi; \
	python312=$$(scripts/find-python3.12); \
	if [ -z "$$python312" ]; then \
	  echo "no Python 3.12 found: sstp-server $(SSTP_SERVER_VERSION) is not installed, its interop tests skip"; \
	  exit 0; \
	fi; \
	set -e; rm -rf $(SORZ_VENV); \
	echo "installing sstp-server $(SSTP_SERVER_VERSION) with $$python312"; \
	"$$python312" -m venv $(SORZ_VENV); \
	$(SORZ_VENV)/bin/python -m pip install --quiet sstp-server==$(SSTP_SERVER_VERSION); \
	touch $(SORZ_STAMP)

## test: create .venv if missing, install pysstp with its test extras, run lint and the whole suite
test: $(STAMP) system-deps sorz-peer
	$(MAKE) lint
	$(BIN)/python -m pytest

## demo: server and client in two network namespaces, ping and a 5 s transfer through the tunnel (root)
demo: $(STAMP) system-deps
	bash scripts/demo.sh

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench,uvloop]'
	touch $(BENCH_STAMP)

## bench: pysstp against a reference relay, plain veth and SoftEther in namespaces, then 1000 sessions on
## each event loop, 100,000 idle sessions, 1 and 8 clients' iperf3 through one server on each event loop
## (and workers 1 and 2 where the server has them), the connect rate through FreeRADIUS and a large MRU
## (root, 8 GiB of memory, about 35 min on 2 quiet cores); BENCH_ARGS="--no-scale-large" skips the 100,000;
## writes docs/benchmarks.md (with the analysis in docs/benchmarks-notes.md) and docs/benchmarks.json
bench: $(BENCH_STAMP) system-deps
	$(BIN)/python -m benchmarks.run --profile --notes docs/benchmarks-notes.md $(BENCH_ARGS)

## lint: ruff on everything, mypy (strict) on the sans-I/O core
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(SORZ_VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
