#!/usr/bin/env bash
# Runs schemathesis (pinned in tests/requirements-schemathesis.txt, installed into a venv
# under .run/) against a live `handoff ingest`, on both listeners, with every check, and
# fails on any failure. The document it tests is the one the binary serves at
# /openapi.json on its internal listener.
#
# Needs Redis and a Kafka-protocol broker: HANDOFF_TEST_KAFKA / HANDOFF_TEST_REDIS, or it
# starts them with scripts/test-env.sh. The last line is `schemathesis: N passed, N failed`
# (N: operations).
#
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/.run/schemathesis
venv=$root/.run/schemathesis-venv
requirements=$root/tests/requirements-schemathesis.txt
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-30}
mkdir -p "$run"

# The pinned schemathesis, once per requirements file.
if ! cmp -s "$requirements" "$venv/.installed" 2>/dev/null; then
  echo "==> installing schemathesis into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
  cp "$requirements" "$venv/.installed"
fi

if [ -z "${HANDOFF_TEST_KAFKA:-}" ] || [ -z "${HANDOFF_TEST_REDIS:-}" ]; then
  eval "$(scripts/test-env.sh up)"
fi

echo "==> building handoff" >&2
cargo build -q --bin handoff >&2
handoff=${CARGO_TARGET_DIR:-$root/target}/debug/handoff

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
public_port=$(free_port)
internal_port=$(free_port)
id="schemathesis-$$-$RANDOM"

# One key holding every scope (so every operation can succeed) and a webhook source whose
# deliveries the hooks sign.
key_out=$("$handoff" keys new --name schemathesis --scope leads:write --scope leads:read \
  --scope dispositions:write --scope reps:read --scope reps:write)
key=$(sed -n 's/^key (shown once; give it to schemathesis): //p' <<<"$key_out")
key_entry=$(sed -n '/^\[\[ingest.keys\]\]/,$p' <<<"$key_out")
webhook_secret="whsec_$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(24)).decode())')"
# The accept/reject links' key (links on: [actions] below).
action_secret=$(python3 -c 'import os; print(os.urandom(32).hex())')

cat >"$run/rules.toml" <<'EOF'
[scoring]
mql_threshold = 10

[routing]
[[routing.teams]]
id = "sales"
members = ["a", "b"]

[[routing.reps]]
id = "a"
capacity = 100

[[routing.reps]]
id = "b"
capacity = 100

[[routing.rules]]
name = "everyone"
team = "sales"
EOF

cat >"$run/handoff.toml" <<EOF
rules_file = "rules.toml"
[kafka]
bootstrap_servers = "$HANDOFF_TEST_KAFKA"
topic_prefix = "$id."
group_prefix = "$id"
partitions = 1
create_topics = true
[redis]
url = "$HANDOFF_TEST_REDIS"
key_prefix = "$id"
[ingest]
listen = "127.0.0.1:$public_port"
max_body_bytes = 65536
publish_timeout_ms = 10000
[ingest.limits]
per_key_per_minute = 10000000
per_address_per_minute = 10000000
burst = 100000
[admin]
listen = "127.0.0.1:$internal_port"
[log]
level = "warn"
$key_entry
[[ingest.forms]]
token = "schemathesis-form"
source = "landing-page"
[[ingest.webhooks]]
source = "provider"
secret_env = "SCHEMATHESIS_WEBHOOK_SECRET"
[actions]
public_url = "http://127.0.0.1:$public_port"
secret_env = "SCHEMATHESIS_ACTION_SECRET"
EOF

echo "==> starting handoff ingest (public :$public_port, internal :$internal_port)" >&2
SCHEMATHESIS_WEBHOOK_SECRET=$webhook_secret SCHEMATHESIS_ACTION_SECRET=$action_secret \
  "$handoff" --config "$run/handoff.toml" ingest \
  >"$run/handoff.log" 2>&1 &
handoff_pid=$!
trap 'kill $handoff_pid 2>/dev/null || true; wait $handoff_pid 2>/dev/null || true' EXIT

public=http://127.0.0.1:$public_port
internal=http://127.0.0.1:$internal_port
for _ in $(seq 1 300); do
  curl -fsS "$internal/readyz" >/dev/null 2>&1 && break
  kill -0 "$handoff_pid" 2>/dev/null || { cat "$run/handoff.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "$internal/openapi.json" -o "$run/openapi.json"

# A real lead, so dispositions can be accepted too (the lead id is one of the ids tried).
lead_id=$(curl -fsS -X POST "$public/v1/leads" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d '{"contact": {"email": "schemathesis@example.com"}}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["lead_id"])')

# A genuine action link for that lead (signed as the notifier signs them:
# handoff_domain::action_link), so the link routes are reached past the signature check;
# the lead is never assigned here (no router), so it answers 409 link_superseded.
action_token=$(python3 - "$action_secret" "$lead_id" <<'EOF'
import base64, hashlib, hmac, json, sys, time
key, lead = sys.argv[1].encode(), sys.argv[2]
claim = {"id": "0" * 32, "lead": lead, "rep": "a", "attempt": 1, "action": "accept", "exp": int(time.time()) + 3600}
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
body = b64(json.dumps(claim, separators=(",", ":")).encode())
print(body + "." + b64(hmac.new(key, b"handoff-action-v1." + body.encode(), hashlib.sha256).digest()))
EOF
)

export SCHEMATHESIS_LEAD_ID=$lead_id SCHEMATHESIS_WEBHOOK_SECRET=$webhook_secret
export SCHEMATHESIS_ACTION_TOKEN=$action_token
export SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH=$root/tests
started=$(date +%s)
passed=0
failed=0
skipped=0
status=0
for listener in public internal; do
  base=$public
  [ "$listener" = internal ] && base=$internal
  echo "==> schemathesis: $listener listener ($base)" >&2
  set +e
  # From .run/: schemathesis keeps its crash cache in the working directory.
  (cd "$run" && "$venv/bin/schemathesis" --config-file "$root/tests/schemathesis.toml" run "$run/openapi.json" \
    --url "$base" --include-tag "$listener" \
    -H "Authorization: Bearer $key" \
    --checks all --max-examples "$max_examples" --workers 1 --seed 1 \
    --report junit --report-junit-path "$run/junit-$listener.xml" \
    --report-dir "$run")
  [ $? -eq 0 ] || status=1
  set -e
  counts=$(python3 - "$run/junit-$listener.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
counts = {"passed": 0, "failed": 0, "skipped": 0}
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    if case.find("failure") is not None or case.find("error") is not None:
        counts["failed"] += 1
    elif case.find("skipped") is not None:
        counts["skipped"] += 1
    else:
        counts["passed"] += 1
print(counts["passed"], counts["failed"], counts["skipped"])
EOF
) || counts="0 1 0"
  read -r p f s <<<"$counts"
  passed=$((passed + p))
  failed=$((failed + f))
  skipped=$((skipped + s))
done
echo "schemathesis took $(($(date +%s) - started))s" >&2
# What the server answered, by route and status (its own count, from /metrics).
curl -fsS "$internal/metrics" | python3 -c '
import re, sys
rows = []
for line in sys.stdin:
    m = re.match(r"handoff_http_requests_total\{(.*)\} (\d+)", line)
    if m:
        labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", m.group(1)))
        rows.append((labels.get("route", ""), labels.get("status", ""), int(m.group(2))))
for route, status, count in sorted(rows):
    print(f"  {route:32} {status} {count:6}", file=sys.stderr)
' || true
if [ "$failed" -ne 0 ]; then
  echo "handoff's log: $run/handoff.log" >&2
fi
summary="schemathesis: $passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary="$summary, $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
