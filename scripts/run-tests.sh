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
  echo "==> $name: $p passed, $f failed (exit $rc)"
}

lint_fmt() { $CARGO fmt --all -- --check && echo "ok fmt" || { echo "FAIL fmt: cargo fmt --all -- --check"; return 1; }; }
lint_clippy() {
  $CARGO clippy --workspace --all-targets -- -D warnings && echo "ok clippy" ||
    { echo "FAIL clippy: cargo clippy --workspace --all-targets -- -D warnings"; return 1; }
}

# The broker's one-time build (~20 minutes on a fresh machine) runs beside the lint and
# build steps instead of after them; test-env.sh waits for it (ensure-tansu.sh's lock).
scripts/ensure-tansu.sh >"$logs/tansu-build.log" 2>&1 &

run fmt count_lines lint_fmt
run clippy count_lines lint_clippy

# The e2e suite kills and restarts the real binary, so it is built first.
if ! $CARGO build --bin handoff; then
  echo "FAIL build: cargo build --bin handoff"
  failed=$((failed + 1))
fi

env_out=$(scripts/test-env.sh up) || { echo "FAIL test-env: could not start Redis/Tansu"; failed=$((failed + 1)); }
eval "$env_out"
trap 'scripts/test-env.sh down' EXIT

export RUST_TEST_THREADS=2
# The fuzz build (nightly, sanitizer flags) shares nothing with target/: keep it between runs,
# like the Tansu binary. 20 s a target keeps the smoke run short (docs/fuzzing.md).
export FUZZ_TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/handoff/fuzz-target}
export FUZZ_SECONDS=${FUZZ_SECONDS:-20}
run cargo count_cargo $CARGO test --workspace --all-targets --no-fail-fast
run deploy count_lines scripts/check-deploy.sh
run fuzz-smoke count_lines scripts/fuzz-smoke.sh
run schemathesis count_summary scripts/schemathesis.sh

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
