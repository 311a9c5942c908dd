#!/usr/bin/env python3
"""Renders helm/kvtier with the real Helm engine (helm-python-sdk, Helm's Go library) for
the default values and with every feature on, and checks what comes out: the resources and
their wiring, clear errors for missing required values, values.schema.json, the built-in
kinds against Kubernetes' JSON schemas (kubernetes-validate), helm lint, that the
PrometheusRule carries exactly the rules file promtool tests, and that every metric the
dashboard and the alerts query is one the servers export (docs/metrics.md).

  check_chart.py REPO_ROOT [BUILD_DIR]   (run with scripts/ops_venv.sh's python; with
  BUILD_DIR, also starts that build's kvtier-store with the chart's default flags)
"""
import json
import re
import sys

import helm_python as helm
import kubernetes_validate
import yaml

ROOT = sys.argv[1]
CHART = f"{ROOT}/helm/kvtier"
KUBE_VERSION = "1.30.0"
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def render(values, name="kv", namespace="prod"):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)
        out = chart.render(values, name=name, namespace=namespace)
    docs = []
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def validate_builtin(docs, label):
    for d in docs:
        if "monitoring.coreos.com" in d["apiVersion"]:
            continue  # CRDs of the Prometheus Operator: not in Kubernetes' schemas
        try:
            kubernetes_validate.validate(d, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            check(False, f"{label}: {d['kind']} {d['metadata']['name']} invalid: {e.message}")


def container_args(docs, kind):
    return by_kind(docs, kind)[0]["spec"]["template"]["spec"]["containers"][0]["args"]


def expect_error(values, needle, label):
    try:
        render(values)
    except Exception as e:  # helm_python raises HelmRenderError / schema errors
        check(needle in str(e), f"{label}: error should mention {needle!r}, got: {e}")
        return
    check(False, f"{label}: rendering should have failed")


IMAGE = {"image": {"repository": "registry.example/kvtier"}}

# 1. Defaults (plus the one required value).
docs = render(IMAGE)
kinds = sorted(d["kind"] for d in docs)
check(kinds == ["ConfigMap", "Deployment", "NetworkPolicy", "NetworkPolicy", "PodDisruptionBudget",
                "Secret", "Service", "Service", "StatefulSet"], f"default kinds: {kinds}")
# Secure by default: the store requires a token, the chart made one for the workers and
# hands them only theirs, and NetworkPolicies admit only the workers, listed clients and
# Prometheus.
secret = by_kind(docs, "Secret")[0]
check(secret["metadata"]["name"] == "kv-kvtier-auth", f"auth Secret name: {secret['metadata']}")
worker_token = secret["stringData"]["worker-token"]
token_lines = [l.split() for l in secret["stringData"]["tokens"].splitlines()
               if l.strip() and not l.startswith("#")]
check(len(worker_token) == 48 and token_lines == [[worker_token, "default"]],
      f"a random worker token listed for the workers' tenant: {token_lines}")
default_store_args = container_args(docs, "StatefulSet")
check("--auth_token_file=/etc/kvtier/auth/tokens" in default_store_args,
      f"the store requires tokens by default: {default_store_args}")
default_worker = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
check("--auth_token_file=/etc/kvtier/auth-token/worker-token" in
      default_worker["containers"][0]["args"] and
      any(v["name"] == "auth-token" and v["secret"]["items"] == [{"key": "worker-token",
                                                                  "path": "worker-token"}]
          for v in default_worker["volumes"]),
      "workers get their own token and not the token file")
netpols = {n["metadata"]["name"]: n for n in by_kind(docs, "NetworkPolicy")}
check(set(netpols) == {"kv-kvtier-store", "kv-kvtier-worker"}, f"NetworkPolicies: {set(netpols)}")
SECURE_DEFAULTS = {"store_args": default_store_args, "secret": secret}
insecure = render({**IMAGE, "store": {"auth": {"enabled": False}}})
check(not by_kind(insecure, "Secret") and
      not any(a.startswith("--auth_token_file") for a in container_args(insecure, "StatefulSet")),
      "auth.enabled=false: no token file, no Secret")
custom = render({**IMAGE, "store": {"auth": {"existingSecret": "mine", "workerTokenKey": "w"},
                                     "quotas": {"file": "a t1_limit=1GiB\n",
                                                "tenantT1LimitBytes": 1000}},
                 "tls": {"existingSecret": "kvtier-tls", "clientAuth": True}})
cargs = container_args(custom, "StatefulSet")
check(not by_kind(custom, "Secret") and "--tenant_quota_file=/etc/kvtier/quotas/quotas" in cargs
      and "--tenant_t1_limit_bytes=1000" in cargs
      and "--tls_client_ca_file=/etc/kvtier/tls/ca.crt" in cargs,
      f"existing Secret, quotas and mutual TLS flags: {cargs}")
check(any(c["metadata"]["name"] == "kv-kvtier-store-quotas" and
          c["data"]["quotas"].startswith("a t1_limit=1GiB") for c in by_kind(custom, "ConfigMap")),
      "the quota file in a ConfigMap")
cw = container_args(custom, "Deployment")
check("--store_tls_cert_file=/etc/kvtier/tls/tls.crt" in cw and
      "--auth_token_file=/etc/kvtier/auth-token/w" in cw, f"worker client cert and token: {cw}")
validate_builtin(custom, "auth, quotas, mutual TLS")
store_args = container_args(docs, "StatefulSet")
check("--t1_bytes=3435973836" in store_args, f"T1 = 4Gi x 0.8 expected in {store_args}")
sts = by_kind(docs, "StatefulSet")[0]
check(sts["spec"]["serviceName"] == "kv-kvtier-store", "StatefulSet behind the headless Service")
headless = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] == "kv-kvtier-store"]
check(headless and headless[0]["spec"]["clusterIP"] == "None", "store Service is headless")
pod = sts["spec"]["template"]["spec"]
c = pod["containers"][0]
check(c["readinessProbe"]["grpc"]["port"] == 50051 and c["livenessProbe"]["grpc"]["port"] == 50051,
      "native gRPC probes on the store")
check("IPC_LOCK" in c["securityContext"]["capabilities"]["add"], "IPC_LOCK for pinned memory")
check(pod["terminationGracePeriodSeconds"] > 20, "grace period longer than the 20 s drain")
check("podAntiAffinity" in pod["affinity"], "anti-affinity across nodes")
worker_args = container_args(docs, "Deployment")
check("--store=dns:///kv-kvtier-store.prod.svc:50051" in worker_args and
      "--store_replication=2" in worker_args,
      f"workers use every shard through the headless Service, two copies: {worker_args}")
store_args0 = sts["spec"]["template"]["spec"]["containers"][0]["args"]
store_env0 = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0].get("env", [])}
check("--shard_id=$(POD_NAME)" in store_args0 and
      store_env0.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
      == "metadata.name", f"each shard is named by its pod: {store_args0}")
check(headless[0]["spec"].get("publishNotReadyAddresses") is False,
      "only ready shards are resolved (a shard that is starting is not asked)")
wres = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["resources"]
check(wres["limits"].get("nvidia.com/gpu") == 1, "worker requests a GPU")
cm = by_kind(docs, "ConfigMap")[0]
check(cm["metadata"]["labels"].get("grafana_dashboard") == "1", "dashboard sidecar label")
check(json.loads(cm["data"]["kvtier.json"])["uid"] == "kvtier-overview", "dashboard JSON shipped")
validate_builtin(docs, "defaults")

# 2. Every feature on.
ALL = {
    **IMAGE,
    "store": {"replicas": 3, "antiAffinity": "required",
              "t2": {"enabled": True, "volume": "pvc", "storageClassName": "local-nvme"},
              "auth": {"existingSecret": "kvtier-tokens"}, "extraArgs": ["--max_tenant_series=64"]},
    "worker": {"kind": "DaemonSet", "runtimeClassName": "nvidia",
               "nodeSelector": {"nvidia.com/gpu.present": "true"},
               "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "prom"}}},
    "dashboards": {"label": "grafana_dashboard", "labelValue": "kvtier",
                   "annotations": {"grafana_folder": "Inference"}},
    "networkPolicy": {"enabled": True,
                      "storeClients": [{"podSelector": {"matchLabels": {"app": "vllm"}}}],
                      "workerClients": [{"namespaceSelector": {"matchLabels": {"team": "llm"}}}]},
    "tls": {"existingSecret": "kvtier-tls"},
    "sameNode": {"enabled": True},
    "extraObjects": [{"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "{{ .Release.Name }}-extra"}, "data": {"a": "b"}}],
}
docs = render(ALL)
kinds = sorted(d["kind"] for d in docs)
for k in ["DaemonSet", "NetworkPolicy", "PrometheusRule", "ServiceMonitor", "StatefulSet"]:
    check(k in kinds, f"all features: {k} rendered ({kinds})")
check("Deployment" not in kinds, "DaemonSet replaces the Deployment")
check(len(by_kind(docs, "ServiceMonitor")) == 2 and len(by_kind(docs, "NetworkPolicy")) == 2,
      "ServiceMonitor and NetworkPolicy for store and worker")
check(any(d["metadata"]["name"] == "kv-extra" for d in by_kind(docs, "ConfigMap")),
      "extraObjects are templated")
sts = by_kind(docs, "StatefulSet")[0]
args = sts["spec"]["template"]["spec"]["containers"][0]["args"]
check("--t2_dir=/var/lib/kvtier/t2" in args and "--auth_token_file=/etc/kvtier/auth/tokens" in args,
      f"T2 and auth flags: {args}")
check("--tls_cert_file=/etc/kvtier/tls/tls.crt" in args, f"store TLS flags: {args}")
sc = sts["spec"]["template"]["spec"]["containers"][0]
check("tcpSocket" in sc["readinessProbe"] and "grpc" not in sc["readinessProbe"],
      "TCP probes when the port speaks TLS")
wargs = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
check("--store_tls_ca_file=/etc/kvtier/tls/ca.crt" in wargs, f"worker verifies the store: {wargs}")
# Workers attach to the sockets of the shards on their node: the same directory.
store_env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0].get("env", [])}
check("--shm_socket=/var/run/kvtier-shm/$(POD_NAME).sock" in args and
      store_env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
      == "metadata.name" and
      "--store_shm_dir=/var/run/kvtier-shm" in wargs,
      f"the same-node data plane on both sides, through the same socket: {args} {wargs}")
for pod in [sts["spec"]["template"]["spec"], by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]]:
    check(any(v["name"] == "shm" and v.get("hostPath", {}).get("path") == "/run/kvtier"
              for v in pod["volumes"]) and
          any(m["name"] == "shm" and m["mountPath"] == "/var/run/kvtier-shm"
              for m in pod["containers"][0]["volumeMounts"]),
          "the same host directory mounted in the store and the worker")
check(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "local-nvme",
      "T2 on a PVC per shard")
ds = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]
check(ds["runtimeClassName"] == "nvidia" and ds["tolerations"], "GPU scheduling values")
rule = by_kind(docs, "PrometheusRule")[0]
with open(f"{CHART}/rules/kvtier-alerts.yaml") as f:
    rules_file = yaml.safe_load(f)
check(rule["spec"] == rules_file, "the PrometheusRule is the rules file promtool checks")
sm = by_kind(docs, "ServiceMonitor")[0]
check(sm["metadata"]["labels"].get("release") == "prom", "ServiceMonitor labels")
check(sm["spec"]["targetLabels"] == ["app.kubernetes.io/component"],
      "component label carried into the metrics (the alerts select on it)")
validate_builtin(docs, "all features")
for volume in ["hostPath", "emptyDir"]:
    docs = render({**IMAGE, "store": {"t2": {"enabled": True, "volume": volume}}})
    vols = by_kind(docs, "StatefulSet")[0]["spec"]["template"]["spec"]["volumes"]
    check(any(v["name"] == "t2" and volume in v for v in vols), f"T2 on {volume}")
    validate_builtin(docs, f"t2 {volume}")

# 3. Missing or bad values: clear errors.
expect_error({}, "image.repository is required", "no image")
expect_error({**IMAGE, "store": {"resources": {"limits": None}}},  # null deletes the default
             "store.resources.limits.memory is required", "no memory limit")
expect_error({**IMAGE, "store": {"enabled": False}}, "worker.storeTarget is required",
             "worker without a store")
expect_error({**IMAGE, "worker": {"kind": "Pod"}}, "kind", "schema: worker.kind")
expect_error({**IMAGE, "store": {"t1": {"lock": "maybe"}}}, "lock", "schema: t1.lock")
expect_error({**IMAGE, "stroe": {}}, "stroe", "schema: unknown key")
expect_error({**IMAGE, "store": {"t1": {"bytes": 0}, "resources": {"limits": {"memory": "4GB"}}}},
             "cannot read the memory quantity", "bad quantity")

# 4. helm lint.
lint = helm.lint(CHART, IMAGE)
check(not lint["errors"], f"helm lint errors: {lint['errors']}")
for m in lint["messages"]:
    check(m["severity"] < 2, f"helm lint: {m}")

# 5. Every metric the dashboard and alerts use is exported (docs/metrics.md lists exactly
# the exported names; tests compare it with the live expositions).
with open(f"{ROOT}/docs/metrics.md") as f:
    documented = set(re.findall(r"\n\| `(kvtier_\w+)` \|", f.read()))
with open(f"{CHART}/dashboards/kvtier.json") as f:
    dashboard = json.load(f)
exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
with open(f"{CHART}/rules/kvtier-alerts.yaml") as f:
    exprs += [r["expr"] for g in yaml.safe_load(f)["groups"] for r in g["rules"]]
for e in exprs:
    for name in re.findall(r"\b(kvtier_\w+)", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        check(base in documented, f"query uses {name}, which no server exports: {e}")

# 6. docs/deploy.md lists exactly the documented values, and every value is documented.
def documented_values(path):
    keys, stack, commented = set(), [], False
    for line in open(path).read().splitlines():
        if re.match(r"^\s*# -- ", line):
            commented = True
            continue
        if re.match(r"^\s*#", line):
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if m:
            stack = stack[: len(m.group(1)) // 2] + [m.group(2)]
            if commented:
                keys.add(".".join(stack))
            commented = False
    return keys


def leaves(tree, prefix=""):
    for k, v in tree.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            yield from leaves(v, path + ".")
        else:
            yield path


values_doc = documented_values(f"{CHART}/values.yaml")
with open(f"{CHART}/values.yaml") as f:
    tree = yaml.safe_load(f)
for leaf in leaves(tree):
    parts = leaf.split(".")
    check(any(".".join(parts[:i]) in values_doc for i in range(1, len(parts) + 1)),
          f"values.yaml: {leaf} has no '# --' description")
with open(f"{ROOT}/docs/deploy.md") as f:
    table = set(re.findall(r"\n\| `([A-Za-z0-9_.]+)` \|", f.read()))
check(table == values_doc, f"docs/deploy.md values table differs from values.yaml: "
                           f"missing {sorted(values_doc - table)}, extra {sorted(table - values_doc)}")

# 7. The real kvtier-store, started with the flags the chart renders by default (the token
# file as the Secret holds it), refuses a call without a token, or with a tenant header
# only, and serves the workers' token. Only the ports, T1's size and its lock are local.
if len(sys.argv) > 2:
    import subprocess
    import tempfile
    import threading

    build = sys.argv[2]
    ctl = f"{build}/client/kvtierctl"
    with tempfile.TemporaryDirectory() as tmp:
        tokens_path = f"{tmp}/tokens"
        with open(tokens_path, "w") as f:
            f.write(SECURE_DEFAULTS["secret"]["stringData"]["tokens"])
        args = [a.replace("/etc/kvtier/auth/tokens", tokens_path).replace("$(POD_NAME)", "kv-0")
                for a in SECURE_DEFAULTS["store_args"]]
        args += ["--listen=127.0.0.1:0", "--metrics_listen=", "--t1_bytes=67108864",
                 "--t1_lock=none"]
        proc = subprocess.Popen([f"{build}/services/kvtier-store", *args],
                                stderr=subprocess.PIPE, text=True)
        port, log = None, []
        for line in proc.stderr:
            log.append(line)
            m = re.search(r"serving on \S+ \(port (\d+)\)", line)
            if m:
                port = m.group(1)
                break
        threading.Thread(target=lambda: [log.append(l) for l in proc.stderr], daemon=True).start()
        check(port is not None, f"the store with the chart's default flags starts: {''.join(log)}")
        if port:
            def ctl_stats(*extra):
                return subprocess.run([ctl, f"--target=127.0.0.1:{port}", "--timeout=5s", *extra,
                                       "stats"], capture_output=True, text=True, timeout=60)
            anonymous = ctl_stats()
            check(anonymous.returncode != 0 and "UNAUTHENTICATED" in anonymous.stderr,
                  f"an unauthenticated call is refused: {anonymous.returncode} {anonymous.stderr}")
            header = ctl_stats("--tenant=default")
            check(header.returncode != 0 and "UNAUTHENTICATED" in header.stderr,
                  f"a tenant header is not an identity: {header.stderr}")
            worker = ctl_stats(f"--token={worker_token}")
            check(worker.returncode == 0 and '"default"' in worker.stdout,
                  f"the workers' token is accepted, as the workers' tenant: "
                  f"{worker.returncode} {worker.stdout} {worker.stderr}")
        proc.terminate()
        proc.wait(timeout=30)
        check(not any("INSECURE" in l for l in log), "the default store does not run insecure")

print(f"check_chart: {len(failures)} failure(s)")
sys.exit(1 if failures else 0)
