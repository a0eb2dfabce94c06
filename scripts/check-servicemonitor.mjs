// Validates ServiceMonitor resources (JSON array on stdin) against the Prometheus
// Operator's CRD schema, as packaged by @kubernetes-models/prometheus-operator: the
// Kubernetes schemas of kubernetes-validate do not know this kind. Used by check-deploy.sh.
// Usage: node check-servicemonitor.mjs NODE_MODULES CHECK_NAME < servicemonitors.json
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, name] = process.argv.slice(2);
// Imported by path: the packages live in check-deploy.sh's own folder, not beside this file.
const model = join(resolve(modules), "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor.js");
const { ServiceMonitor } = await import(pathToFileURL(model).href);

const docs = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const doc of docs) {
  try {
    new ServiceMonitor(doc).validate();
  } catch (e) {
    problems.push(`${doc.metadata.name}: ${e.message}`);
  }
}
// Not vacuous: a wrongly typed field must fail.
const canary = structuredClone(docs[0] ?? { metadata: { name: "none" }, spec: { selector: {}, endpoints: [{}] } });
canary.spec.endpoints[0].honorLabels = "yes";
try {
  new ServiceMonitor(canary).validate();
  problems.push("the CRD schema accepts honorLabels: \"yes\": the check is vacuous");
} catch {}
if (docs.length === 0) problems.push("no ServiceMonitor rendered");
console.log(problems.length ? `FAIL ${name}: ${problems.join("; ")}` : `ok ${name}`);
process.exitCode = problems.length ? 1 : 0;
