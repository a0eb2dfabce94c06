#!/usr/bin/env bash
# Starts (up) or stops (down) the Redis topologies the suite also runs handoff on, all on
# loopback, nothing persisted, state under .run/test-env:
#   - a Redis Cluster of three masters (ports 17000-17002);
#   - a Sentinel group: a master, a replica and one sentinel watching `handoff-test`
#     (ports 16390, 16391, 26390); a test may fail it over, so either may be master;
#   - a server that speaks only TLS (port 16443), with a certificate made here.
# `up` prints the URLs the tests read (HANDOFF_TEST_REDIS_CLUSTER, HANDOFF_TEST_REDIS_SENTINEL,
# HANDOFF_TEST_REDIS_TLS).
set -euo pipefail
cd "$(dirname "$0")/.."
run=$PWD/.run/test-env/topologies
cluster_ports=(17000 17001 17002)
master=16390
replica=16391
sentinel=26390
tls=16443

answers() { redis-cli -p "$1" ping >/dev/null 2>&1; }

wait_for() { # port
  for _ in $(seq 1 50); do answers "$1" && return 0; sleep 0.1; done
  echo "redis on port $1 did not answer" >&2
  return 1
}

server() { # port dir [more redis-server args]
  local port=$1 dir=$2
  shift 2
  mkdir -p "$dir"
  answers "$port" && return 0
  redis-server --port "$port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" "$@"
  wait_for "$port"
}

cluster_up() {
  for port in "${cluster_ports[@]}"; do
    server "$port" "$run/cluster-$port" --cluster-enabled yes \
      --cluster-config-file "$run/cluster-$port/nodes.conf" --cluster-node-timeout 2000
  done
  if ! redis-cli -p "${cluster_ports[0]}" cluster info | grep -q 'cluster_state:ok'; then
    local nodes=()
    for port in "${cluster_ports[@]}"; do nodes+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$run/cluster-create.log" 2>&1
  fi
  for port in "${cluster_ports[@]}"; do
    for _ in $(seq 1 100); do
      redis-cli -p "$port" cluster info | grep -q 'cluster_state:ok' && break
      sleep 0.1
    done
  done
}

sentinel_up() {
  answers "$sentinel" && return 0
  server "$master" "$run/sentinel-master"
  server "$replica" "$run/sentinel-replica" --replicaof 127.0.0.1 "$master"
  mkdir -p "$run/sentinel"
  # Sentinel rewrites its config file, so it gets a fresh one each time it starts.
  cat >"$run/sentinel/sentinel.conf" <<CONF
port $sentinel
bind 127.0.0.1
daemonize yes
dir $run/sentinel
pidfile $run/sentinel/sentinel.pid
logfile $run/sentinel/sentinel.log
sentinel monitor handoff-test 127.0.0.1 $master 1
sentinel down-after-milliseconds handoff-test 2000
sentinel failover-timeout handoff-test 10000
CONF
  redis-server "$run/sentinel/sentinel.conf" --sentinel
  wait_for "$sentinel"
}

tls_up() {
  redis-cli --tls --insecure -p "$tls" ping >/dev/null 2>&1 && return 0
  if ! command -v openssl >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq openssl >/dev/null
  fi
  local dir=$run/tls
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >/dev/null 2>&1
  redis-server --port 0 --tls-port "$tls" --bind 127.0.0.1 --daemonize yes --save "" \
    --appendonly no --tls-cert-file "$dir/cert.pem" --tls-key-file "$dir/key.pem" \
    --tls-ca-cert-file "$dir/cert.pem" --tls-auth-clients no \
    --dir "$dir" --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for _ in $(seq 1 50); do
    redis-cli --tls --insecure -p "$tls" ping >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "the TLS redis on port $tls did not answer" >&2
  return 1
}

up() {
  mkdir -p "$run"
  cluster_up >&2
  sentinel_up >&2
  tls_up >&2
  local nodes
  nodes=$(printf '127.0.0.1:%s,' "${cluster_ports[@]}")
  echo "export HANDOFF_TEST_REDIS_CLUSTER=redis+cluster://${nodes%,}"
  echo "export HANDOFF_TEST_REDIS_SENTINEL=redis+sentinel://127.0.0.1:$sentinel/handoff-test"
  # The certificate is self-made, so the test skips verification (`#insecure`).
  echo "export HANDOFF_TEST_REDIS_TLS=rediss://127.0.0.1:$tls/#insecure"
}

down() {
  for port in "${cluster_ports[@]}" "$master" "$replica" "$sentinel"; do
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  done
  redis-cli --tls --insecure -p "$tls" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$run"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
