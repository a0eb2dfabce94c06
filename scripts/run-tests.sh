#!/usr/bin/env bash
# `make test`: every check and test the project has, on a machine that may have none of
# their tools, ending with one line `N passed, N failed` over everything that ran.
#
#   lint        cargo fmt --check, cargo clippy -D warnings          (1 each)
#   cargo       unit, property and end-to-end tests                  (each #[test])
#   deploy      Dockerfile, compose file, Kubernetes manifests       (each `ok`/`FAIL` line)
#   fuzz-smoke  every fuzz target for FUZZ_SECONDS from the seeds      (each target)
#   schemathesis the OpenAPI document against a live ingest            (each operation)
#
# A step that cannot run at all (a build error, a missing tool) counts as one failure, so
# the summary never reads green over something that did not run.
set -uo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
logs=.run/test-logs
mkdir -p "$logs"
passed=0
failed=0

count_cargo() { # log
  local p f
  p=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed' "$1" | awk '{s+=$4} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed;' "$1" | awk '{s+=$1} END {print s+0}')
  echo "$p $f"
}

count_lines() { # log
  local p f
  p=$(grep -Ec '^ok ' "$1")
  f=$(grep -Ec '^FAIL ' "$1")
  echo "$p $f"
}

count_summary() { # log: the step's own last `NAME: N passed, N failed` line
  local line p f
  line=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
  p=$(echo "$line" | grep -Eo '[0-9]+ passed' | grep -Eo '[0-9]+')
  f=$(echo "$line" | grep -Eo '[0-9]+ failed' | grep -Eo '[0-9]+')
  p=${p:-0}
  f=${f:-0}
  echo "$p $f"
}

# run NAME COUNTER CMD...: runs CMD with its output teed to a log, then counts it.
run() {
  local name=$1 counter=$2
  shift 2
  echo "==> $name"
  local started=$SECONDS
  "$@" 2>&1 | tee "$logs/$name.log"
  local rc=${PIPESTATUS[0]}
  # The counters only read the log (they run in a subshell); the totals are kept here.
  read -r p f < <($counter "$logs/$name.log")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    # Failed without a failing test to show for it (build error, crash, missing tool).
    failed=$((failed + 1))
    echo "==> $name: exited $rc without a counted failure; counted as one failure"
  fi
  echo "==> $name: $p passed, $f failed (exit $rc, $((SECONDS - started)) s)"
}

lint_fmt() { $CARGO fmt --all -- --check && echo "ok fmt" || { echo "FAIL fmt: cargo fmt --all -- --check"; return 1; }; }
lint_clippy() {
  $CARGO clippy --workspace --all-targets -- -D warnings && echo "ok clippy" ||
    { echo "FAIL clippy: cargo clippy --workspace --all-targets -- -D warnings"; return 1; }
}

# The broker's one-time build (~20 minutes on a fresh machine) runs in the background from
# the start. Everything that needs no broker, or brings its own mock cluster (the unit and
# crate tests, the chaos suite, the deploy checks, the fuzz smoke run), runs while it builds;
# the e2e suite and schemathesis, which need the real broker, run after it
# (test-env.sh waits for the build: ensure-tansu.sh's lock).
scripts/ensure-tansu.sh >"$logs/tansu-build.log" 2>&1 &
# OpenSSL and libcurl headers, before anything builds librdkafka (Kafka TLS, OIDC).
scripts/ensure-build-deps.sh || echo "==> could not install the build's C libraries"

run fmt count_lines lint_fmt
run clippy count_lines lint_clippy

# The e2e and chaos suites kill and restart the real binary, so it is built first.
if ! $CARGO build --bin handoff; then
  echo "FAIL build: cargo build --bin handoff"
  failed=$((failed + 1))
fi

trap 'scripts/test-env.sh down' EXIT
env_out=$(scripts/test-env.sh up-redis) || { echo "FAIL test-env: could not start Redis"; failed=$((failed + 1)); }
eval "$env_out"

export RUST_TEST_THREADS=2
# The fuzz build (nightly, sanitizer flags) shares nothing with target/: keep it between runs,
# like the Tansu binary. 20 s a target keeps the smoke run short (docs/fuzzing.md).
export FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/handoff/fuzz-target}
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
# Every cargo test but the e2e suite (tests/tests/e2e), which is the only one on Tansu.
run cargo count_cargo $CARGO test --workspace --exclude handoff-e2e --all-targets --no-fail-fast
run cargo-harness count_cargo $CARGO test -p handoff-e2e --lib --bins --test chaos --test contract --no-fail-fast
run deploy count_lines scripts/check-deploy.sh
run fuzz-smoke count_lines scripts/fuzz-smoke.sh

# Built now, so the wait for the broker below is not followed by a compile.
if ! $CARGO test -p handoff-e2e --test e2e --no-run; then
  echo "FAIL build: cargo test -p handoff-e2e --test e2e --no-run"
  failed=$((failed + 1))
fi
echo "==> waiting for the broker (Tansu build: $logs/tansu-build.log)"
waited=$SECONDS
env_out=$(scripts/test-env.sh up) || { echo "FAIL test-env: could not start Redis/Tansu"; failed=$((failed + 1)); }
eval "$env_out"
echo "==> broker up after $((SECONDS - waited)) s of waiting"
run cargo-e2e count_cargo $CARGO test -p handoff-e2e --test e2e --no-fail-fast
run schemathesis count_summary scripts/schemathesis.sh

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
