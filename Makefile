# handoff — the two commands the README promises:
#   make run   a fresh machine to a running system (embedded Kafka, local Redis, demo traffic)
#   make test  formatting, lints and the whole suite against real Redis and a real broker
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo

.PHONY: help run test lint fmt unit e2e test-env-up test-env-down bench load build check-deploy fuzz-smoke schemathesis

help:
	@echo "make run    build and start handoff dev (embedded Kafka, local Redis, demo traffic)"
	@echo "make test   fmt check, clippy -D warnings, every test (starts Redis and Tansu)"
	@echo "make bench  criterion benchmark of score + route"
	@echo "make load   end-to-end load figures (N leads through ingest -> router -> assigned)"
	@echo "make check-deploy  lint the Dockerfile, validate deploy/compose and deploy/k8s (no engine needed)"
	@echo "make schemathesis  the OpenAPI document against a live ingest (docs/api.md)"

build:
	scripts/ensure-build-deps.sh
	$(CARGO) build --release --bin handoff

run: build
	scripts/ensure-redis.sh 6379
	HANDOFF_LOG_LEVEL=$${HANDOFF_LOG_LEVEL:-warn} ./target/release/handoff dev --config deploy/config/handoff.toml

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Everything: lints, every test against real servers, the deploy checks and the bounded
# fuzz/contract runs; ends with one line `N passed, N failed` (scripts/run-tests.sh).
test:
	scripts/run-tests.sh

# The OpenAPI document against a live ingest (docs/api.md).
schemathesis:
	@eval "$$(scripts/test-env.sh up)"; \
	  scripts/schemathesis.sh; rc=$$?; \
	  scripts/test-env.sh down; exit $$rc

bench:
	$(CARGO) bench -p handoff-domain --bench decide

# Every fuzz target for at most FUZZ_SECONDS (30) from the committed seeds (docs/fuzzing.md).
fuzz-smoke:
	scripts/fuzz-smoke.sh

load:
	@eval "$$(scripts/test-env.sh up)"; \
	  $(CARGO) run --release -p handoff-e2e --bin handoff-load -- --kafka $$HANDOFF_TEST_KAFKA --redis $$HANDOFF_TEST_REDIS $(LOAD_ARGS); rc=$$?; \
	  scripts/test-env.sh down; exit $$rc

# Dockerfile (hadolint), compose file (compose-spec schema), Kubernetes overlays (rendered,
# strict Kubernetes schemas, ServiceMonitor CRD schema); installs its pinned tools in .run/.
check-deploy:
	scripts/check-deploy.sh
