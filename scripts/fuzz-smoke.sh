#!/usr/bin/env bash
# A bounded fuzz run of every target (docs/fuzzing.md): each starts from the committed seeds
# in fuzz/seeds/TARGET and runs for at most FUZZ_SECONDS (default 30). Any crash fails the
# script; the crashing input is left in fuzz/artifacts/TARGET for a regression test.
#
#   scripts/fuzz-smoke.sh [TARGET...]    (default: every target)
#
# Needs the nightly toolchain; installs cargo-fuzz if it is missing. The fuzz build goes to
# $FUZZ_TARGET_DIR (default: $CARGO_TARGET_DIR/fuzz, else fuzz/target).
set -euo pipefail

cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"
target_dir="${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}}"
target_dir="${target_dir:-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

# One build of every target first, so a build error fails fast and the run times below are
# fuzzing only.
build_start=$SECONDS
cargo +nightly fuzz build --target-dir "$target_dir"
echo "fuzz build: $((SECONDS - build_start)) s"
failed=0
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="$(mktemp)"
  start=$SECONDS
  # corpus/TARGET (generated, git-ignored) grows; seeds/TARGET is read only.
  if cargo +nightly fuzz run --target-dir "$target_dir" "$target" "corpus/$target" "seeds/$target" \
      -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    runs="$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)"
    cov="$(grep -oP '#[0-9]+\s+DONE\s+cov: \K[0-9]+' "$log" | tail -1 || true)"
    echo "ok fuzz-$target: ${runs:-?} runs in $((SECONDS - start)) s, cov ${cov:-?}"
  else
    failed=1
    echo "FAIL fuzz-$target: crashed (input in fuzz/artifacts/$target)"
    grep -E "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -5 | sed 's/^/    /' || true
  fi
  rm -f "$log"
done
exit $failed
