#!/usr/bin/env bash
# Makes sure redis-server is installed (Debian package) and a server answers on PORT.
# Usage: scripts/ensure-redis.sh PORT [DATA_DIR]
#   With DATA_DIR, starts a private, non-persistent server there if none answers.
set -euo pipefail
port=${1:-6379}
dir=${2:-}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "==> installing redis-server (apt-get)"
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
fi

if redis-cli -p "$port" ping >/dev/null 2>&1; then
  exit 0
fi

echo "==> starting redis-server on 127.0.0.1:$port"
if [ -n "$dir" ]; then
  mkdir -p "$dir"
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
else
  # The dev server keeps nothing on disk (handoff dev clears its namespace at start anyway).
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "${TMPDIR:-/tmp}"
fi
for _ in $(seq 1 50); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && exit 0
  sleep 0.1
done
echo "redis-server did not answer on port $port" >&2
exit 1
