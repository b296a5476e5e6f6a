# edged: the edge-server appliance firmware.
#
#   make run     start edged on loopback with the embedded default config (all roles up)
#   make test    everything CI checks: format, lints, unit and integration tests with the
#                real peers (coturn, sipp, stunnel, haproxy...), fuzz smoke, benchmark
#                smoke, the Buildroot tree check and the HIL suite against the image in qemu;
#                prints each stage's time at the end
#   make test-under-load   the unit and integration suites five times under stress-ng
#
# Each target installs what it needs (Debian packages through apt, Python packages in a
# venv). Outputs live under target/ and images/out/, both git-ignored.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RUN_DIR ?= target/run

# Debian packages the tests drive as real peers.
APT_TEST := coturn sip-tester stunnel4 haproxy kamailio kamailio-tls-modules dnsutils iproute2 \
            python3-venv chromium openssl
# Services those packages may start on a systemd machine; they would hold the ports edged
# wants on loopback, so they are stopped and disabled.
APT_SERVICES := coturn kamailio haproxy stunnel4

.PHONY: run build test test-under-load deps-test fmt-check clippy unit fuzz fuzz-smoke bench bench-smoke \
        bench-turn bench-sip bench-webconf bench-auth bench-flood image hil buildroot-check clean-run

run: build
	@mkdir -p $(RUN_DIR)
	@echo "starting edged (data in $(RUN_DIR)); Ctrl-C stops it"
	@exec target/debug/edged --data-dir $(RUN_DIR) --admin-socket $(RUN_DIR)/admin.sock --banner

build:
	$(CARGO) build -p edged -p edgectl -p webconf-connector

clean-run:
	rm -rf $(RUN_DIR)

# ---------------------------------------------------------------------------- test
# The stages run in this order; each one's time is printed at the end (also when one fails)
# and kept in target/stage-times. Budget on 2 cores from a clean clone: under 40 minutes.
TEST_STAGES := deps-test fmt-check clippy unit fuzz-smoke bench-smoke buildroot-check hil

test:
	@.ci/stages.sh $(TEST_STAGES)
	@echo "make test: all checks passed"

# The unit and integration suites five times in a row while stress-ng keeps every core
# busy, stopping at the first failure: tests wait for what they read, not for a fixed time.
test-under-load:
	.ci/test-under-load.sh 5

deps-test:
	@missing=""; for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now $(APT_SERVICES) >/dev/null 2>&1 || true; fi; \
	fi

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Builds every binary first: integration tests drive edged and edgectl as separate processes.
unit:
	$(CARGO) build --workspace --bins
	EDGED_REQUIRE_TOOLS=1 $(CARGO) test --workspace

# Short coverage-guided runs of every parser that input reaches (nightly + cargo-fuzz),
# starting from the committed corpora; the deterministic mutation tests in `cargo test` cover
# the SIP and STUN parsers where nightly is absent. `make fuzz FUZZ_SECONDS=3600` is the long run.
FUZZ_SECONDS ?= 10
FUZZ_DIRS := firmware/protocols/sip-core/fuzz firmware/protocols/stun-core/fuzz firmware/fuzz
fuzz-smoke: fuzz
fuzz:
	@if ! $(CARGO) +nightly --version >/dev/null 2>&1; then \
	  echo "fuzz: no nightly toolchain here; the parsers' mutation tests ran in 'cargo test'"; exit 0; fi; \
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked -q; \
	for dir in $(FUZZ_DIRS); do \
	  $(CARGO) +nightly fuzz build --fuzz-dir $$dir; \
	  for t in $$($(CARGO) +nightly fuzz list --fuzz-dir $$dir); do \
	    echo "fuzz $$dir $$t ($(FUZZ_SECONDS)s)"; \
	    mkdir -p $$dir/corpus/$$t; \
	    $(CARGO) +nightly fuzz run --fuzz-dir $$dir $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 2>&1 | tail -n 2; \
	  done; \
	done

# ---------------------------------------------------------------------------- benchmarks
bench: bench-turn bench-sip bench-webconf bench-auth

bench-smoke:
	$(MAKE) bench-turn bench-sip bench-webconf bench-auth bench-flood SMOKE=1

BENCH_FLAGS = $(if $(SMOKE),--smoke,)

bench-turn:
	firmware/roles/av-edge/bench/turn-bench.sh $(BENCH_FLAGS)

bench-sip:
	firmware/roles/access-edge/bench/run.sh $(BENCH_FLAGS)

bench-webconf:
	firmware/roles/webconf-edge/bench/run.sh $(BENCH_FLAGS)

# The assignment stops the recipe when the build fails (a substitution inside an argument
# would not, and the error would be a missing file).
bench-auth:
	bin=$$(firmware/build-release.sh); "$$bin/examples/issue_rate" $(BENCH_FLAGS)

# Floods against edged while legitimate calls, media and meeting sessions run, then the same
# floods against coturn and Kamailio (network namespaces; needs root). Not part of `bench`:
# the full run takes about 25 minutes; the smoke runs in `bench-smoke`.
bench-flood:
	firmware/tools/flood/run.sh $(BENCH_FLAGS)

# ---------------------------------------------------------------------------- appliance
image:
	images/build-image.sh

hil: image
	hil-tests/run.sh

buildroot-check:
	buildroot/check-tree.sh
	buildroot/test-check-tree.sh
