#!/usr/bin/env bash
# What one lead costs Redis: the server's own CPU time and command counts, for leads posted
# over HTTP and routed by the real services (`handoff-load --embedded --redis-cost`, mock
# cluster), on a private, empty Redis. Figures for
# docs/adr/0007-redis-topologies-and-scale-out.md. Usage: scripts/redis-cost.sh [LEADS]
set -euo pipefail
cd "$(dirname "$0")/.."
leads=${1:-5000}
port=${REDIS_COST_PORT:-16400}
dir=$PWD/.run/redis-cost
mkdir -p "$dir"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
  --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true' EXIT
for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done

cargo build -q -p handoff-e2e --bin handoff-load
# The load command reads the server's counters itself, around the measured leads only:
# after its warm-up and its floor (whose own commits used to be counted here), with the
# services' idle polling taken out. Memory per lead: `handoff-load memory` (docs/benchmarks.md).
target/debug/handoff-load --embedded --redis "redis://127.0.0.1:$port" --leads "$leads" --concurrency 8 --redis-cost \
  | grep -E "throughput|received|redis per lead|redis idle"
# Where they go: the server's counts since the load command reset them at the start of the
# measured leads (its idle polling included, so a little above the figure above).
echo "by command, per lead (script-internal calls included):"
redis-cli -p "$port" info commandstats | tr -d '\r' | grep '^cmdstat' \
  | awk -F'[:=,]' -v n="$leads" '{printf "  %-16s %6.2f\n", substr($1, 9), $3 / n}' | sort -k2 -n -r | head -16
