# The README's commands. `make test` is what CI runs (.ci/run).
SHELL := bash
CARGO ?= cargo
NEXTEST_PROFILE := $(if $(filter true 1,$(CI)),ci,default)

.PHONY: setup test lint unit bench clean-test-state

setup:
	@scripts/setup

test: setup lint unit

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) nextest run --workspace --locked --profile $(NEXTEST_PROFILE)
	$(CARGO) test --workspace --locked --doc --quiet

# Prints figures (no thresholds): `cargo bench` targets with harness = false.
bench:
	$(CARGO) bench --workspace --benches --locked
