#!/usr/bin/env bash
# Starts (up) or stops (down) what the test suite talks to: a private Redis and a Tansu
# broker with SQLite storage, both on loopback, state under .run/test-env.
# `up` prints the environment the tests read (HANDOFF_TEST_KAFKA, HANDOFF_TEST_REDIS, and the
# cluster and Sentinel URLs of scripts/redis-topologies.sh). `up-redis` does all but the
# broker: what the tests that need no broker (or bring their own mock cluster) read, while
# Tansu may still be building.
set -euo pipefail
cd "$(dirname "$0")/.."
run=.run/test-env
redis_port=${HANDOFF_TEST_REDIS_PORT:-16379}
kafka_port=${HANDOFF_TEST_KAFKA_PORT:-19092}

up() {
  mkdir -p "$run"
  scripts/ensure-redis.sh "$redis_port" "$PWD/$run/redis" >&2
  # The dashboard test runs the shipped dashboard's queries against a real Prometheus.
  if ! command -v prometheus >/dev/null 2>&1; then
    echo "==> installing prometheus (apt-get)" >&2
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus >/dev/null
  fi
  # The Kafka security tests put a TLS terminator in front of their brokers (Tansu 0.6
  # serves plain TCP only).
  if ! command -v stunnel >/dev/null 2>&1; then
    echo "==> installing stunnel4 (apt-get)" >&2
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
    $sudo apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq stunnel4 >/dev/null
  fi
  # Python tools some tests drive (a third-party Standard Webhooks signer, ...).
  if ! python3 -m pip install -q --disable-pip-version-check -r tests/requirements.txt \
      -r tests/contract/requirements.txt >&2; then
    echo "==> could not install the tests' Python requirements" >&2
  fi
  # A Redis Cluster and a Sentinel group: handoff runs on those too (docs/adr/0007).
  scripts/redis-topologies.sh up
  echo "export HANDOFF_TEST_REDIS=redis://127.0.0.1:$redis_port"
}

up_broker() {
  tansu=$(scripts/ensure-tansu.sh)
  if ! (exec 3<>/dev/tcp/127.0.0.1/"$kafka_port") 2>/dev/null; then
    echo "==> starting tansu on 127.0.0.1:$kafka_port" >&2
    rm -rf "$run/tansu" && mkdir -p "$run/tansu"
    # Tansu resolves sqlite:// paths against its working directory. `exec` and the
    # redirections matter: nothing may keep the caller's $(...) pipe open.
    (cd "$run/tansu" && exec "$tansu" broker \
      --listener-url "tcp://127.0.0.1:$kafka_port" \
      --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
      --storage-engine "sqlite://tansu.db") </dev/null >"$run/tansu/tansu.log" 2>&1 &
    echo $! >"$run/tansu/tansu.pid"
    for _ in $(seq 1 100); do
      (exec 3<>/dev/tcp/127.0.0.1/"$kafka_port") 2>/dev/null && break
      sleep 0.1
    done
  fi
  echo "export HANDOFF_TEST_KAFKA=127.0.0.1:$kafka_port"
  # The tests that need a broker of their own (authentication on) start this binary.
  echo "export HANDOFF_TEST_TANSU=$tansu"
}

down() {
  if [ -f "$run/tansu/tansu.pid" ]; then
    kill "$(cat "$run/tansu/tansu.pid")" 2>/dev/null || true
    rm -f "$run/tansu/tansu.pid"
  fi
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  scripts/redis-topologies.sh down
}

case "${1:-}" in
  up) up && up_broker ;;
  up-redis) up ;;
  down) down ;;
  *) echo "usage: $0 up|up-redis|down" >&2; exit 2 ;;
esac
