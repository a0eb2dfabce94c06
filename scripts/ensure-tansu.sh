#!/usr/bin/env bash
# Makes sure the Tansu broker binary (0.6.0, SQLite storage) is built and cached, and prints
# its path. The first build takes ~20 minutes on 2 cores; later runs reuse the cache.
# Override the cache with TANSU_HOME.
set -euo pipefail
version=0.6.0
home=${TANSU_HOME:-$HOME/.cache/handoff/tansu-$version}
bin="$home/bin/tansu"

# One build at a time: `make test` starts it early in the background, and test-env.sh
# waits here for that build instead of starting a second one.
mkdir -p "$home"
exec 9>"$home/.build-lock"
flock 9

if [ ! -x "$bin" ]; then
  echo "==> building tansu $version with the SQLite engine into $home (once; ~20 min)" >&2
  # A private target dir: the project's own target/ stays untouched.
  CARGO_TARGET_DIR="$home/build" cargo install --locked tansu --version "$version" \
    --features libsql --root "$home" >&2
  rm -rf "$home/build"
fi
echo "$bin"
