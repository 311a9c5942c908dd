#!/usr/bin/env python3
"""A real Prometheus (Debian's) scrapes a live kvtier-store (with T2) and kvtier-worker on
loopback while trace replays (two tenants) and worker conversations run. Then every panel
query of the Grafana dashboard is evaluated through Prometheus' HTTP API and must return
data, `promtool check metrics` must be clean on both expositions, and the main panels are
drawn from the Prometheus data into a PNG.

  live_prometheus.py BUILD_DIR REPO_ROOT PICTURE.png
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

BUILD, ROOT, PICTURE = sys.argv[1], sys.argv[2], sys.argv[3]
TRACE_CANDIDATES = [f"{ROOT}/../shared/data/traces/mooncake_synthetic_trace.jsonl",
                    "/work/shared/data/traces/mooncake_synthetic_trace.jsonl"]
RATE_WINDOW = "20s"
failures = []
procs = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, log):
    p = subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    return p


def http(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def wait_http(url, what, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            return http(url, timeout=2)
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not come up at {url}")


def query(prom, expr, t=None):
    params = {"query": expr}
    if t is not None:
        params["time"] = str(t)
    body = json.loads(http(f"http://127.0.0.1:{prom}/api/v1/query?" + urllib.parse.urlencode(params)))
    if body["status"] != "success":
        raise RuntimeError(body)
    return body["data"]["result"]


def query_range(prom, expr, start, end, step=1):
    params = {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
    body = json.loads(http(f"http://127.0.0.1:{prom}/api/v1/query_range?" + urllib.parse.urlencode(params)))
    return body["data"]["result"]


def synthetic_trace(path, requests=600):
    """A Mooncake-format trace with shared prefixes, for machines without the shared one."""
    import random
    rng = random.Random(7)
    next_id = 1000
    prefixes = [list(range(g * 100, g * 100 + rng.randint(2, 8))) for g in range(12)]
    with open(path, "w") as f:
        for i in range(requests):
            head = prefixes[min(int(rng.paretovariate(1.2)) - 1, len(prefixes) - 1)]
            tail = list(range(next_id, next_id + rng.randint(1, 6)))
            next_id += len(tail)
            ids = head + tail
            f.write(json.dumps({"timestamp": i, "input_length": 512 * len(ids),
                                "output_length": 64, "hash_ids": ids}) + "\n")
    return path


def main():
    tmp = tempfile.mkdtemp(prefix="kvtier-live-")
    ports = {k: free_port() for k in ["store", "store_m", "worker", "worker_m", "prom"]}
    trace = next((t for t in TRACE_CANDIDATES if os.path.exists(t)), None)
    if trace is None:
        trace = synthetic_trace(f"{tmp}/trace.jsonl")
        print("the shared trace is not here; replaying a synthetic one", flush=True)
    # Quotas, so that the dashboard's tenant panels (usage against limit and guarantee) have data.
    with open(f"{tmp}/quotas.txt", "w") as f:
        f.write("team-a t1_limit=24MiB t2_limit=24MiB\nteam-b t1_guarantee=8MiB\n")
    store = start([f"{BUILD}/services/kvtier-store", f"--listen=127.0.0.1:{ports['store']}",
                   f"--tenant_quota_file={tmp}/quotas.txt",
                   f"--metrics_listen=127.0.0.1:{ports['store_m']}", "--t1_lock=none",
                   "--t1_min_slot_bytes=16384", f"--t1_bytes={3000 * 16384}",
                   f"--t2_dir={tmp}/t2", f"--t2_bytes={3000 * 16384}", "--t2_admit_min_score=0", "--t2_admit_min_return=0"],
                  f"{tmp}/store.log")
    wait_http(f"http://127.0.0.1:{ports['store_m']}/metrics", "kvtier-store")
    worker = start([f"{BUILD}/services/kvtier-worker", f"--listen=127.0.0.1:{ports['worker']}",
                    f"--metrics_listen=127.0.0.1:{ports['worker_m']}",
                    f"--store=127.0.0.1:{ports['store']}", "--pages=160", "--threads=1"],
                   f"{tmp}/worker.log")
    wait_http(f"http://127.0.0.1:{ports['worker_m']}/metrics", "kvtier-worker")
    with open(f"{tmp}/prometheus.yml", "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: kvtier-store
    static_configs:
      - targets: ["127.0.0.1:{ports['store_m']}"]
        labels: {{namespace: live, pod: kvtier-store-0, app_kubernetes_io_component: store}}
  - job_name: kvtier-worker
    static_configs:
      - targets: ["127.0.0.1:{ports['worker_m']}"]
        labels: {{namespace: live, pod: kvtier-worker-0, app_kubernetes_io_component: worker}}
""")
    start(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/tsdb",
           f"--web.listen-address=127.0.0.1:{ports['prom']}", "--log.level=warn"],
          f"{tmp}/prometheus.log")
    wait_http(f"http://127.0.0.1:{ports['prom']}/-/ready", "prometheus")
    t0 = time.time()
    time.sleep(3)

    # Traffic: replays of two tenants and worker conversations, for about 40 seconds.
    bench = f"{BUILD}/bench/kvtier-bench"
    demo = f"{BUILD}/client/kvtier-worker-demo"
    # The same requests each round, so that later rounds hit what earlier ones stored.
    for round_ in range(6):
        for tenant, limit in [("team-a", 300), ("team-b", 100)]:
            subprocess.run([bench, "replay", f"--trace={trace}", "--mode=grpc",
                                f"--target=127.0.0.1:{ports['store']}", f"--tenant={tenant}",
                                f"--limit_requests={limit}"], check=True,
                               stdout=subprocess.DEVNULL)
            time.sleep(1)
        subprocess.run([demo, f"--worker=127.0.0.1:{ports['worker']}", "--turns=4",
                        "--system_tokens=960", "--user_tokens=48", "--answer_tokens=8",
                        f"--conversation={round_}"], check=True, stdout=subprocess.DEVNULL)
        time.sleep(1)
    time.sleep(3)  # the last scrapes
    t1 = time.time()

    prom = ports["prom"]
    up = query(prom, "up")
    check(len(up) == 2 and all(r["value"][1] == "1" for r in up), f"both targets up: {up}")

    # Every dashboard query returns data.
    with open(f"{ROOT}/helm/kvtier/dashboards/kvtier.json") as f:
        dashboard = json.load(f)
    evaluated = 0
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (target["expr"].replace("$__rate_interval", RATE_WINDOW)
                    .replace('namespace=~"$namespace"', 'namespace=~".*"'))
            result = query(prom, expr, t1 - 1)
            evaluated += 1
            check(len(result) > 0, f"panel '{panel['title']}' query returned no data: {expr}")
            values = [float(r["value"][1]) for r in result]
            finite = [v for v in values if v == v and abs(v) != float("inf")]
            print(f"  {panel['title'][:40]:40} {target['legendFormat'][:22]:22} "
                  f"series={len(result)} finite={len(finite)}", flush=True)
    print(f"evaluated {evaluated} dashboard queries", flush=True)
    # Hit rates are real numbers, not just present.
    for expr in ['sum(rate(kvtier_lookup_hit_blocks_total[1m])) / sum(rate(kvtier_lookup_requested_blocks_total[1m]))',
                 'sum by (tenant) (rate(kvtier_tenant_lookup_hit_blocks_total[1m]))']:
        r = query(prom, expr, t1 - 1)
        check(r and all(0 <= float(x["value"][1]) < 1e9 for x in r), f"{expr} -> {r}")
    tenants = {r["metric"].get("tenant") for r in query(prom, "kvtier_tenant_lookup_requested_blocks_total")}
    check({"team-a", "team-b"} <= tenants, f"per-tenant series: {tenants}")

    # promtool check metrics on both expositions.
    for name, port in [("store", ports["store_m"]), ("worker", ports["worker_m"])]:
        text = http(f"http://127.0.0.1:{port}/metrics")
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        check(r.returncode == 0, f"promtool check metrics ({name}): {r.stdout}{r.stderr}")
        print(f"promtool check metrics {name}: {'clean' if r.returncode == 0 else r.stdout + r.stderr}",
              flush=True)

    draw(prom, t0, t1)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"live_prometheus: {len(failures)} failure(s)")
    return 1 if failures else 0


def draw(prom, t0, t1):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    w = "5s"
    panels = [
        ("Block hit rate (overall and per tier)", "ratio", [
            (f"sum(rate(kvtier_lookup_hit_blocks_total[{w}])) / sum(rate(kvtier_lookup_requested_blocks_total[{w}]))", "all"),
            (f"sum by (tier) (rate(kvtier_tier_hit_blocks_total[{w}])) / ignoring(tier) group_left sum(rate(kvtier_lookup_requested_blocks_total[{w}]))", "{tier}"),
        ]),
        ("Bytes per tier against capacity (log scale)", "MiB", [
            ("sum by (tier) (kvtier_tier_used_bytes) / 1048576", "{tier} used"),
            ("sum by (tier) (kvtier_tier_capacity_bytes) / 1048576", "{tier} capacity"),
        ]),
        ("RPC latency p50 / p99", "ms", [
            (f"1000 * histogram_quantile(0.5, sum by (method, le) (rate(kvtier_rpc_duration_seconds_bucket{{method=~\"Lookup|Fetch|Put\"}}[{w}])))", "p50 {method}"),
            (f"1000 * histogram_quantile(0.99, sum by (method, le) (rate(kvtier_rpc_duration_seconds_bucket{{method=~\"Lookup|Fetch|Put\"}}[{w}])))", "p99 {method}"),
        ]),
        ("Worker prefix tokens by source", "tokens/s", [
            (f"sum by (source) (rate(kvtier_worker_prefix_tokens_total[{w}]))", "{source}"),
        ]),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 7.5))
    for ax, (title, unit, queries) in zip(axes.flat, panels):
        for expr, legend in queries:
            for series in query_range(prom, expr, t0, t1):
                xs = [float(v[0]) - t0 for v in series["values"]]
                ys = [float(v[1]) for v in series["values"]]
                ax.plot(xs, ys, label=legend.format(**{k: series["metric"].get(k, "") for k in
                                                       ["tier", "method", "source"]}))
        if "log scale" in title:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds", fontsize=8)
        ax.set_ylabel(unit, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle("kvtier dashboard panels, drawn from a live Prometheus (tests/ops/live_prometheus.py)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(PICTURE, dpi=90)
    print(f"picture: {PICTURE}", flush=True)


if __name__ == "__main__":
    try:
        code = main()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    sys.exit(code)
