"""The checks behind scripts/check-deploy.sh: the compose file against the compose-spec
schema, the rendered Kubernetes manifests against the Kubernetes schemas (strict), and the
promises the README makes about both (probes, AOF, hot-reloadable rules, ...), which no
schema knows. Each check prints `ok <name>` or `FAIL <name>: <why>`; the exit code is the
number of failures.

Each schema check first proves it is not vacuous: a copy with an unknown field must fail.
"""

import base64
import copy
import json
import re
import sys
import tomllib
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("ingest", "router", "sla", "notifier")
ADMIN_PORT = 9464
API_PORT = 8080
# Versions the manifests are checked against: the oldest Kubernetes we claim, the newest
# the pinned kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "1.37.0")
# Kinds Kubernetes does not define; validated against their CRD schema by the node check.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

failures = 0


def report(name, problems):
    global failures
    if problems:
        failures += 1
        print(f"FAIL {name}: " + "; ".join(problems))
    else:
        print(f"ok {name}")


# --- compose -------------------------------------------------------------------------

def check_compose(schema_path):
    compose_dir = ROOT / "deploy/compose"
    doc = yaml.safe_load((compose_dir / "compose.yaml").read_text())
    schema = json.loads(Path(schema_path).read_text())
    validator = jsonschema.Draft7Validator(schema)

    problems = [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
                for e in validator.iter_errors(doc)]
    canary = copy.deepcopy(doc)
    canary["services"]["redis"]["restart_polcy"] = "always"
    if validator.is_valid(canary):
        problems.append("the schema accepts an unknown service key: the check is vacuous")
    report("compose-schema", problems)

    services = doc.get("services", {})
    problems = []
    for role in ROLES:
        svc = services.get(role)
        if svc is None:
            problems.append(f"no service {role}")
            continue
        if svc.get("command") != [role]:
            problems.append(f"{role}: command is {svc.get('command')}, not [{role!r}]")
        env = svc.get("environment", {})
        if env.get("HANDOFF_ADMIN_LISTEN") != f"0.0.0.0:{ADMIN_PORT}":
            problems.append(f"{role}: internal listener not on 0.0.0.0:{ADMIN_PORT}")
        # Only the router rebuilds a lost Redis state: the rebuild's memory is sized for it
        # (docs/operations.md, "Memory").
        default = tomllib.loads((ROOT / "deploy/config/handoff.toml").read_text())
        rebuild = str(env.get("HANDOFF_STATE_AUTO_REBUILD",
                              default.get("state", {}).get("auto_rebuild", True))).lower()
        if (rebuild == "true") != (role == "router"):
            problems.append(f"{role}: state.auto_rebuild is {rebuild}: only the router should rebuild")
    images = {services.get(role, {}).get("image") for role in ROLES}
    builders = [r for r in ROLES if "build" in services.get(r, {})]
    if len(images) != 1 or len(builders) != 1:
        problems.append(f"the roles should share one image built once (images {images}, built by {builders})")
    notifier_env = services.get("notifier", {}).get("environment", {})
    if "HANDOFF_NOTIFIER_SIGNING_SECRET" not in notifier_env:
        problems.append("notifier has no HANDOFF_NOTIFIER_SIGNING_SECRET")
    redis_cmd = " ".join(services.get("redis", {}).get("command", []))
    if "--appendonly yes" not in redis_cmd or "--appendfsync" not in redis_cmd:
        problems.append("redis runs without AOF (--appendonly yes, --appendfsync)")
    # Bind mounts must name files of this repository (the schema cannot know).
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not (compose_dir / source).exists():
                    problems.append(f"{name}: mount source {source} does not exist")
    prom = yaml.safe_load((compose_dir / "prometheus.yml").read_text())
    targets = {t for sc in prom["scrape_configs"] for c in sc["static_configs"] for t in c["targets"]}
    for role in ROLES:
        if f"{role}:{ADMIN_PORT}" not in targets:
            problems.append(f"prometheus does not scrape {role}:{ADMIN_PORT}")
    for provisioning in (compose_dir / "grafana/provisioning").rglob("*.yml"):
        yaml.safe_load(provisioning.read_text())
    for dashboard in (ROOT / "deploy/grafana").glob("*.json"):
        json.loads(dashboard.read_text())
    report("compose-contents", problems)


# --- kubernetes ------------------------------------------------------------------------

def check_k8s(overlay, rendered_path, crd_out):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    docs = [d for d in yaml.safe_load_all(Path(rendered_path).read_text()) if d]
    crds = [d for d in docs if (d["apiVersion"], d["kind"]) in CRD_KINDS]
    Path(crd_out).write_text(json.dumps(crds))

    problems = []
    for version in K8S_VERSIONS:
        for doc in docs:
            if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
                continue
            what = f"{doc['kind']}/{doc['metadata']['name']} ({version})"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except ValidationError as e:
                problems.append(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
            except SchemaNotFoundError:
                problems.append(f"{what}: no schema for {doc['apiVersion']}")
    canary = copy.deepcopy(next(d for d in docs if d["kind"] == "Deployment"))
    canary["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    try:
        kubernetes_validate.validate(canary, K8S_VERSIONS[0], strict=True)
        problems.append("the schema accepts an unknown container field: the check is vacuous")
    except ValidationError:
        pass
    report(f"k8s-schema-{overlay}", problems)
    report(f"k8s-contents-{overlay}", k8s_contents(docs))


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def k8s_contents(docs):
    problems = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
    secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    services = by_kind.get("Service", [])
    env_cm = next((c for n, c in configmaps.items() if n.startswith("handoff-env")), None)

    for role in ROLES:
        dep = deployments.get(f"handoff-{role}")
        if dep is None:
            problems.append(f"no Deployment handoff-{role}")
            continue
        pod = dep["spec"]["template"]["spec"]
        labels = dep["spec"]["template"]["metadata"]["labels"]
        (c,) = pod["containers"]
        where = f"handoff-{role}"
        if c.get("args") != [role]:
            problems.append(f"{where}: args {c.get('args')}, not [{role!r}]")
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        if ports.get("admin") != ADMIN_PORT:
            problems.append(f"{where}: no port admin={ADMIN_PORT}")
        if role == "ingest" and ports.get("http") != API_PORT:
            problems.append(f"{where}: no port http={API_PORT}")
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c.get(probe, {}).get("httpGet", {})
            if get.get("path") != path or get.get("port") not in ("admin", ADMIN_PORT):
                problems.append(f"{where}: {probe} is not GET {path} on the internal port")
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(kind, {})):
                problems.append(f"{where}: resources.{kind} lacks cpu or memory")
        if not pod.get("securityContext", {}).get("runAsNonRoot"):
            problems.append(f"{where}: runAsNonRoot is not set")
        sc = c.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: root filesystem writable or privilege escalation allowed")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{where}: capabilities are not dropped")

        # Config and rules: HANDOFF_CONFIG names a file of the mounted config ConfigMap, and
        # its rules_file lies in a directory mount (subPath mounts never see updates).
        env = {e["name"]: e for e in c.get("env", [])}
        config_path = env.get("HANDOFF_CONFIG", {}).get("value", "")
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        mounts = {}
        for m in c.get("volumeMounts", []):
            cm = volumes.get(m["name"], {}).get("configMap", {}).get("name")
            if cm and "subPath" in m:
                problems.append(f"{where}: ConfigMap {cm} mounted with subPath: updates never arrive")
            elif cm:
                mounts[m["mountPath"].rstrip("/")] = (cm, m)
        config_dir, _, config_key = config_path.rpartition("/")
        cm_name, _ = mounts.get(config_dir, (None, None))
        settings = None
        if cm_name not in configmaps or config_key not in configmaps[cm_name].get("data", {}):
            problems.append(f"{where}: HANDOFF_CONFIG={config_path} is not in a mounted ConfigMap")
        else:
            settings = tomllib.loads(configmaps[cm_name]["data"][config_key])
        if settings is not None:
            rules_dir, _, rules_key = settings.get("rules_file", "").rpartition("/")
            rules_cm, _ = mounts.get(rules_dir, (None, None))
            if rules_cm is None or rules_key not in configmaps.get(rules_cm, {}).get("data", {}):
                problems.append(f"{where}: rules_file is not in a mounted ConfigMap")
            elif rules_cm != "handoff-rules":
                problems.append(f"{where}: the rules ConfigMap name has a hash suffix: edits would not reach running pods")

        for e in env.values():
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] in secrets and ref["key"] not in secrets[ref["name"]].get("data", {}):
                problems.append(f"{where}: Secret {ref['name']} has no key {ref['key']}")
        for source in c.get("envFrom", []):
            ref = source.get("configMapRef")
            if ref and ref["name"] not in configmaps:
                problems.append(f"{where}: envFrom ConfigMap {ref['name']} is not rendered")
        if role == "notifier" and "HANDOFF_NOTIFIER_SIGNING_SECRET" not in env:
            problems.append(f"{where}: no signing secret")
        # A signing secret the manifests carry must be one the notifier starts with
        # (settings.rs check_signing_secret: 32 bytes at least, never a published sample).
        ref = env.get("HANDOFF_NOTIFIER_SIGNING_SECRET", {}).get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["name"] in secrets:
            encoded = secrets[ref["name"]].get("data", {}).get(ref["key"])
            value = base64.b64decode(encoded) if encoded else b""
            if encoded and (len(value) < 32 or value == b"dev-only-secret"):
                problems.append(f"{where}: the rendered signing secret would be refused by the notifier ({len(value)} bytes or a sample)")
        # Only the router rebuilds a lost Redis state: its memory limit is sized for the
        # rebuild (docs/operations.md, "Memory"). The container's env wins over envFrom.
        rebuild = env.get("HANDOFF_STATE_AUTO_REBUILD", {}).get("value")
        for source in c.get("envFrom", []) if rebuild is None else []:
            ref = source.get("configMapRef") or {}
            data = configmaps.get(ref.get("name"), {}).get("data", {})
            rebuild = data.get("HANDOFF_STATE_AUTO_REBUILD", rebuild)
        if rebuild is None:
            rebuild = str((settings or {}).get("state", {}).get("auto_rebuild", True)).lower()
        if (rebuild.lower() == "true") != (role == "router"):
            problems.append(f"{where}: state.auto_rebuild is {rebuild}: only the router should rebuild")

        if not any(matches(p["spec"]["selector"]["matchLabels"], labels)
                   for p in by_kind.get("PodDisruptionBudget", [])):
            problems.append(f"{where}: no PodDisruptionBudget")
        internal = [s for s in services
                    if s["metadata"].get("labels", {}).get("handoff/listener") == "internal"
                    and matches(s["spec"]["selector"], labels)]
        if not any(p["port"] == ADMIN_PORT and p.get("name") == "admin"
                   for s in internal for p in s["spec"]["ports"]):
            problems.append(f"{where}: no internal Service on {ADMIN_PORT}")
        if role == "ingest" and not any(
                p["port"] == API_PORT for s in services if s["metadata"]["name"] == "handoff-ingest"
                for p in s["spec"]["ports"]):
            problems.append("ingest: no public Service on 8080")

    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    if [h["spec"]["scaleTargetRef"]["name"] for h in hpas] != ["handoff-router"]:
        problems.append("expected exactly one HPA, for handoff-router")
    elif "replicas" in deployments.get("handoff-router", {}).get("spec", {}):
        problems.append("handoff-router sets replicas although the HPA owns them")
    else:
        partitions = int((env_cm or {}).get("data", {}).get("HANDOFF_KAFKA_PARTITIONS", 6))
        if hpas[0]["spec"]["maxReplicas"] > partitions:
            problems.append(f"router maxReplicas {hpas[0]['spec']['maxReplicas']} > {partitions} partitions: the rest would idle")

    for sm in by_kind.get("ServiceMonitor", []):
        selected = [s for s in services if matches(sm["spec"]["selector"]["matchLabels"],
                                                   s["metadata"].get("labels", {}))]
        roles = {s["metadata"]["labels"].get("app.kubernetes.io/component") for s in selected}
        if roles != set(ROLES):
            problems.append(f"ServiceMonitor selects {sorted(r for r in roles if r)}, not every role")
        for ep in sm["spec"]["endpoints"]:
            if not all(any(p.get("name") == ep["port"] for p in s["spec"]["ports"]) for s in selected):
                problems.append(f"ServiceMonitor port {ep['port']} is missing on a selected Service")
    return problems


# --- the sample files the manifests carry ---------------------------------------------------

def check_samples():
    problems = []
    sample_rules = ROOT / "deploy/config/rules.toml"
    k8s_rules = ROOT / "deploy/k8s/base/rules.toml"
    if sample_rules.read_bytes() != k8s_rules.read_bytes():
        problems.append("deploy/k8s/base/rules.toml differs from deploy/config/rules.toml "
                        "(kustomize cannot read outside its folder; copy it over)")
    # handoff rejects unknown keys: every key of the Kubernetes settings must exist in the
    # sample, which the test suite loads.
    sample = tomllib.loads((ROOT / "deploy/config/handoff.toml").read_text())
    k8s = tomllib.loads((ROOT / "deploy/k8s/base/handoff.toml").read_text())
    for key, value in k8s.items():
        if key not in sample:
            problems.append(f"deploy/k8s/base/handoff.toml: unknown key {key}")
        elif isinstance(value, dict):
            problems.extend(f"deploy/k8s/base/handoff.toml: unknown key {key}.{k}"
                            for k in value if k not in sample[key])
    report("k8s-sample-config", problems)

# --- runbook links --------------------------------------------------------------------------

RUNBOOKS = "docs/runbooks.md"


def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading: lower case, every character that is not
    a letter, a digit, a space, `-` or `_` dropped, spaces turned into hyphens."""
    text = re.sub(r"`|\*\*|\*", "", heading.strip()).lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def markdown_anchors(path):
    """Every heading anchor of a Markdown file (code blocks skipped), with GitHub's `-1`,
    `-2` suffixes for repeated headings."""
    anchors, seen, fenced = set(), {}, False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = github_anchor(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def runbook_problems(alerts, base, anchors):
    problems = []
    for alert in alerts:
        url = alert.get("annotations", {}).get("runbook_url")
        name = alert["alert"]
        if not url:
            problems.append(f"{name} has no runbook_url")
        elif not url.startswith(base):
            problems.append(f"{name}: runbook_url {url} does not start with {base}")
        elif url[len(base):] not in anchors:
            problems.append(f"{name}: no heading of {RUNBOOKS} has the anchor #{url[len(base):]}")
    return problems


def check_runbooks():
    """Every alert links its runbook section: `runbook_url` is the repository of Cargo.toml,
    `/blob/main/docs/runbooks.md#`, and an anchor that a heading of that file has. Links
    between the docs inside runbooks.md must resolve too."""
    repository = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["repository"]
    base = f"{repository}/blob/main/{RUNBOOKS}#"
    doc = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
    anchors = markdown_anchors(ROOT / RUNBOOKS)
    problems = runbook_problems(alerts, base, anchors)
    if not alerts:
        problems.append("no alerts found in deploy/prometheus/alerts.yml")
    # Not vacuous: an alert without a link, and one linking a missing section, must fail.
    canaries = [{"alert": "Canary"},
                {"alert": "Canary", "annotations": {"runbook_url": base + "no-such-section"}}]
    if len(runbook_problems(canaries, base, anchors)) != 2:
        problems.append("the check accepts a missing or dangling runbook_url: it is vacuous")
    # Links from the runbooks into themselves and the other docs.
    text = (ROOT / RUNBOOKS).read_text()
    for target, anchor in re.findall(r"\]\(([^)#\s]*)#([^)\s]+)\)", text):
        path = (ROOT / RUNBOOKS).parent / target if target else ROOT / RUNBOOKS
        if not path.exists():
            problems.append(f"{RUNBOOKS} links to {target}, which does not exist")
        elif anchor not in markdown_anchors(path):
            problems.append(f"{RUNBOOKS} links to {target or RUNBOOKS}#{anchor}: no such heading")
    report("runbook-links", problems)


def main(argv):
    command, *args = argv
    if command == "compose":
        check_compose(*args)
    elif command == "k8s":
        check_k8s(*args)
    elif command == "samples":
        check_samples()
    elif command == "runbooks":
        check_runbooks()
    else:
        sys.exit(f"unknown command {command}")
    return failures


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
