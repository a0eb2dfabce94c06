#!/usr/bin/env bash
# Checks the packaging without a container engine or a cluster: the Dockerfile (hadolint),
# deploy/compose (compose-spec schema), deploy/k8s (kustomize render of each overlay, the
# Kubernetes schemas, strict; the ServiceMonitor against its CRD schema) and the promises
# the README makes about them. One line per check: `ok <name>` or `FAIL <name>: <why>`;
# exits non-zero when any check fails. Installs its tools on first use (pinned):
# PyPI packages of deploy/requirements-check.txt into .run/deploy-check/venv, and two npm
# packages into .run/deploy-check/npm (the compose-spec schema ships in dclint; the
# ServiceMonitor schema in @kubernetes-models/prometheus-operator), and Debian's prometheus
# for promtool. Needs python3, npm and kubectl (its built-in kustomize), which this
# project's machines have.
set -uo pipefail
cd "$(dirname "$0")/.."

NPM_PACKAGES=(dclint@3.1.0 @kubernetes-models/prometheus-operator@6.0.0)
OVERLAYS=(dev prod)
work=.run/deploy-check
venv=$work/venv
npm_dir=$work/npm
failed=0

fail() { echo "FAIL $1: $2"; failed=1; }

install_tools() {
  mkdir -p "$work"
  local want
  want=$(cat deploy/requirements-check.txt)
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" &&
      "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
        -r deploy/requirements-check.txt >"$work/pip.log" 2>&1 &&
      echo "$want" >"$venv/.installed" ||
      { fail tools "pip install failed (see $work/pip.log)"; return 1; }
  fi
  want="${NPM_PACKAGES[*]}"
  if [ "$(cat "$npm_dir/.installed" 2>/dev/null)" != "$want" ]; then
    rm -rf "$npm_dir" && mkdir -p "$npm_dir"
    # A package.json of its own, so npm installs here and not in a parent folder's project.
    echo '{"private": true}' >"$npm_dir/package.json"
    npm install --prefix "$npm_dir" --no-audit --no-fund --no-save --loglevel=error \
      "${NPM_PACKAGES[@]}" >"$work/npm.log" 2>&1 &&
      echo "$want" >"$npm_dir/.installed" ||
      { fail tools "npm install failed (see $work/npm.log)"; return 1; }
  fi
}

if ! install_tools; then exit 1; fi
py=$venv/bin/python

# The image recipe.
if out=$("$venv/bin/hadolint" --no-color Dockerfile 2>&1); then echo "ok hadolint"
else fail hadolint "$(echo "$out" | tr '\n' ' ')"; fi

# The compose file.
"$py" scripts/check_deploy.py compose "$npm_dir/node_modules/dclint/schemas/compose.schema.json" || failed=1

# Compose's Prometheus configuration with the alert rules, laid out as the compose file
# mounts them, and the rules' unit tests. promtool comes with Debian's prometheus
# (scripts/test-env.sh installs it too).
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
  { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq prometheus; } \
    >"$work/apt.log" 2>&1
fi
if command -v promtool >/dev/null 2>&1; then
  staged=$work/prometheus && rm -rf "$staged" && mkdir -p "$staged"
  cp deploy/compose/prometheus.yml "$staged/prometheus.yml"
  cp deploy/prometheus/alerts.yml "$staged/alerts.yml"
  if out=$(promtool check config "$staged/prometheus.yml" 2>&1); then echo "ok compose-prometheus"
  else fail compose-prometheus "$(echo "$out" | grep -v SUCCESS | tr '\n' ' ')"; fi
  # The alert rules' unit tests: one file per alert (deploy/prometheus/tests), one line each.
  for test in deploy/prometheus/tests/*.yml; do
    name=prometheus-rules-$(basename "$test" .yml)
    if out=$(promtool test rules "$test" 2>&1); then echo "ok $name"
    else fail "$name" "$(echo "$out" | tr '\n' ' ' | cut -c1-2000)"; fi
  done
else
  fail compose-prometheus "promtool missing and apt-get install prometheus failed (see $work/apt.log)"
fi

# Every alert's runbook_url resolves to a section of docs/runbooks.md (GitHub's anchors).
"$py" scripts/check_deploy.py runbooks || failed=1

# The Kubernetes manifests, rendered as `kubectl apply -k` would.
"$py" scripts/check_deploy.py samples || failed=1
if ! command -v kubectl >/dev/null 2>&1; then
  fail k8s-render "kubectl not found (its built-in kustomize renders the overlays)"
else
  # The dev overlay reads the signing secret a developer makes once (README); a random one
  # for the render when this checkout has none, removed afterwards.
  dev_signing=deploy/k8s/overlays/dev/signing.env
  if [ ! -f "$dev_signing" ]; then
    printf 'notifier-signing-secret=%s\n' "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >"$dev_signing"
    trap 'rm -f "$dev_signing"' EXIT
  fi
  for overlay in "${OVERLAYS[@]}"; do
    rendered=$work/k8s-$overlay.yaml
    if ! kubectl kustomize "deploy/k8s/overlays/$overlay" >"$rendered" 2>"$work/kustomize-$overlay.log"; then
      fail "k8s-render-$overlay" "$(tr '\n' ' ' <"$work/kustomize-$overlay.log")"
      continue
    fi
    echo "ok k8s-render-$overlay"
    "$py" scripts/check_deploy.py k8s "$overlay" "$rendered" "$work/crds-$overlay.json" || failed=1
  done
  # Only prod includes the monitoring component.
  node scripts/check-servicemonitor.mjs "$npm_dir/node_modules" k8s-servicemonitor-prod \
    <"$work/crds-prod.json" || failed=1
fi

exit $failed
