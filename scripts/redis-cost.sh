#!/usr/bin/env bash
# What one lead costs Redis: server time (from INFO commandstats) and memory (used_memory
# before/after), for leads posted over HTTP and routed by the real services
# (`handoff-load --embedded`, mock cluster), on a private, empty Redis. Figures for
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
cpu() { redis-cli -p "$port" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ {s += $2} END {printf "%.6f", s}'; }
before=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2+0}')
cpu_before=$(cpu)
redis-cli -p "$port" config resetstat >/dev/null
target/debug/handoff-load --embedded --redis "redis://127.0.0.1:$port" --leads "$leads" --concurrency 8 \
  | grep -E "throughput|received"
# The load command posts 100 warm-up leads before the measured ones.
total=$((leads + 100))
after=$(redis-cli -p "$port" info memory | awk -F: '/^used_memory:/ {print $2+0}')
cpu_after=$(cpu)
# CPU seconds the server spent, not wall time inside commands: a busy machine inflates the
# latter (commandstats' usec), not the former.
awk -v a="$cpu_after" -v b="$cpu_before" -v n="$total" 'BEGIN {
  per = (a - b) * 1e6 / n
  printf "redis CPU per lead: %.0f us -> one shard (one core) saturates near %.0f leads/s\n", per, 1e6 / per
}'
redis-cli -p "$port" info commandstats | tr -d '\r' | awk -F'[:=,]' -v n="$total" '
  /^cmdstat_/ { calls += $3 }
  END {
    printf "redis commands per lead (script-internal calls included): %.1f\n", calls / n
  }'
echo "redis memory per lead: $(( (after - before) / total )) bytes (open, assigned, clocks running)"
echo "by command (calls, wall usec per call; scripts include their inner calls):"
redis-cli -p "$port" info commandstats | tr -d '\r' | grep '^cmdstat' \
  | awk -F'[:=,]' '{printf "  %-12s %8d calls %8.1f us/call\n", substr($1, 9), $3, $7}' | sort -k2 -n -r | head -12
