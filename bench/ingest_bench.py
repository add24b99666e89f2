"""Ingest benchmark: a realistic Hubble file of N flows, end-to-end throughput and peak RSS.

Usage::

    .venv/bin/python bench/ingest_bench.py --flows 1000000
    .venv/bin/python bench/ingest_bench.py --flows 10000000 --keep

Generated files go to ``bench/work/ingest/`` (gitignored); ``--keep`` reuses one.

The generator uses a real Cilium 1.20 flow line (tests/samples) as template
and varies pods, labels (incl. pod-template-hash), IPs, ports and times. Each
connection emits the records Hubble really shows: egress at the client node
(TO_OVERLAY), ingress at the server node (TO_ENDPOINT), policy-verdict events,
reply packets; a few connections go to the world or are policy drops.

Each measurement runs in a child process; peak RSS is that child's
``ru_maxrss``, CPU time its user + system time. The reference ("practical limit") is a bare DuckDB
``read_ndjson`` + ``count(*) GROUP BY`` over the same JSON fields.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = (
    ROOT / "tests" / "samples" / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress-named.ndjson"
)
_SAFE = "bcdfghjklmnpqrstvwxz2456789"


def _endpoint(rng: random.Random, ns: str, app: str, idx: int) -> dict:
    rs_hash = "".join(rng.choice(_SAFE) for _ in range(10))
    pod = f"{app}-{rs_hash}-{''.join(rng.choice(_SAFE) for _ in range(5))}"
    return {
        "ID": 100 + idx,
        "identity": 20000 + idx,
        "cluster_name": "default",
        "namespace": ns,
        "labels": sorted(
            [
                f"k8s:app={app}",
                f"k8s:app.kubernetes.io/name={app}",
                f"k8s:pod-template-hash={rs_hash}",
                f"k8s:tier=t{idx % 3}",
                f"k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name={ns}",
                "k8s:io.cilium.k8s.policy.cluster=default",
                f"k8s:io.cilium.k8s.policy.serviceaccount={app}",
                f"k8s:io.kubernetes.pod.namespace={ns}",
            ]
        ),
        "pod_name": pod,
        "workloads": [{"name": app, "kind": "Deployment"}],
    }


class Generator:
    """Renders flow lines by splicing fields into the real template line."""

    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        base = json.loads(TEMPLATE.read_text().splitlines()[3])  # pod -> pod TCP 80
        self.base = base
        self.pods = []
        for i in range(240):  # 40 namespaces x 6 apps, 3 pods each
            ns, app = f"ns-{i // 6}", f"app-{i % 6}"
            for r in range(3):
                ep = _endpoint(self.rng, ns, app, i)
                self.pods.append((ep, f"10.{i // 200}.{i % 200}.{r + 2}"))
        self.world = {"identity": 2, "labels": ["reserved:world"]}

    def line(self, flow: dict) -> str:
        wrapped = dict(self.base)
        wrapped["flow"] = flow
        wrapped["time"] = flow["time"]
        wrapped["node_name"] = flow["node_name"]
        return json.dumps(wrapped, separators=(",", ":"))

    def connection(self, t: float, sport: int) -> list[str]:
        rng = self.rng
        (cli, cip), (srv, sip) = rng.choice(self.pods), rng.choice(self.pods)
        dport = rng.choice((80, 443, 5432, 6379, 8080, 9090))
        to_world = rng.random() < 0.05
        if to_world:
            srv, sip, dport = self.world, f"34.{rng.randrange(256)}.{rng.randrange(256)}.9", 443
        drop = rng.random() < 0.02
        out = []
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
        for k, (point, direction, etype, node) in enumerate(
            (
                ("TO_OVERLAY", "EGRESS", 4, "node-a"),
                (None, "EGRESS", 5, "node-a"),
                ("TO_ENDPOINT", "INGRESS", 4, "node-b"),
            )
        ):
            if drop and k == 2:
                break
            if to_world and k == 2:
                break
            flow = dict(self.base["flow"])
            flow.update(
                {
                    "time": f"{stamp}.{k:03d}{rng.randrange(10**6):06d}Z",
                    "uuid": f"{rng.getrandbits(64):016x}",
                    "node_name": node,
                    "IP": {"source": cip, "destination": sip, "ipVersion": "IPv4"},
                    "l4": {
                        "TCP": {
                            "source_port": sport,
                            "destination_port": dport,
                            "flags": {"SYN": True},
                        }
                    },
                    "source": cli,
                    "destination": srv,
                    "traffic_direction": direction,
                    "event_type": {"type": etype},
                    "is_reply": False,
                    "verdict": "DROPPED" if drop else "FORWARDED",
                }
            )
            if point:
                flow["trace_observation_point"] = point
            if drop:
                flow["drop_reason_desc"] = "POLICY_DENIED"
            out.append(self.line(flow))
        if not drop:
            reply = dict(self.base["flow"])
            reply.update(
                {
                    "time": f"{stamp}.9{rng.randrange(10**8):08d}Z",
                    "node_name": "node-b",
                    "IP": {"source": sip, "destination": cip, "ipVersion": "IPv4"},
                    "l4": {
                        "TCP": {
                            "source_port": dport,
                            "destination_port": sport,
                            "flags": {"SYN": True, "ACK": True},
                        }
                    },
                    "source": srv,
                    "destination": cli,
                    "traffic_direction": "INGRESS",
                    "trace_observation_point": "TO_ENDPOINT",
                    "is_reply": True,
                    "event_type": {"type": 4},
                }
            )
            out.append(self.line(reply))
        return out


def generate(path: Path, n_flows: int, seed: int = 7) -> None:
    """Write ``n_flows`` lines (whole connections, ~4 lines each)."""
    gen = Generator(seed)
    t0, written, sport = 1_767_225_600.0, 0, 32768
    with path.open("w") as fh:
        while written < n_flows:
            lines = gen.connection(t0 + written / 2000.0, sport)[: n_flows - written]
            fh.write("\n".join(lines) + "\n")
            written += len(lines)
            sport = 32768 + (sport - 32767) % 28000


ENGINE_CHILD = """
import sys, time, resource
from recommender.observe.factory import get_engine
t = time.perf_counter()
r = get_engine('embedded').aggregate([sys.argv[1]])
dt = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(dt, u.ru_maxrss, len(r.observations), r.stats.connections, r.stats.flow_records,
      u.ru_utime + u.ru_stime)
"""

DUCKDB_CHILD = """
import sys, time, resource, duckdb
con = duckdb.connect(config={'memory_limit': '512MB'})
con.execute('SET enable_progress_bar = false')
ep = 'STRUCT(namespace VARCHAR, labels VARCHAR[])'
cols = {'flow': f'STRUCT(source {ep}, destination {ep}, '
                'l4 STRUCT(TCP STRUCT(destination_port INTEGER)), verdict VARCHAR)'}
t = time.perf_counter()
n = con.execute(
    'SELECT count(*) FROM (SELECT flow.source.namespace, flow.source.labels, '
    'flow.destination.namespace, flow.destination.labels, flow.l4.TCP.destination_port, '
    f'flow.verdict, count(*) FROM read_ndjson(?, columns={cols!r}) GROUP BY ALL)',
    [sys.argv[1]]).fetchone()
dt = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(dt, u.ru_maxrss, n[0], u.ru_utime + u.ru_stime)
"""


def measure(code: str, path: Path) -> list[str]:
    """Run ``code`` in a child process; its last stdout line holds the figures."""
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"measurement failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1].split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "work" / "ingest"))
    parser.add_argument("--keep", action="store_true", help="reuse an existing generated file")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"hubble-{args.flows}.json"
    if not (args.keep and path.exists()):
        t = time.perf_counter()
        generate(path, args.flows)
        print(
            f"generated {path} ({path.stat().st_size / 1e9:.2f} GB) in "
            f"{time.perf_counter() - t:.0f} s"
        )
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    ref = measure(DUCKDB_CHILD, path)
    ref_rate = args.flows / float(ref[0])
    print(
        f"bare duckdb read_ndjson group by: {float(ref[0]):.1f} s, {ref_rate:,.0f} flows/s, "
        f"peak RSS {int(ref[1]) / 1024:.0f} MB, {ref[2]} groups, CPU {float(ref[3]):.0f} s",
        flush=True,
    )
    ours = measure(ENGINE_CHILD, path)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    our_rate = args.flows / float(ours[0])
    print(
        f"netpol ingest+aggregate:          {float(ours[0]):.1f} s, {our_rate:,.0f} flows/s, "
        f"peak RSS {int(ours[1]) / 1024:.0f} MB, {ours[2]} observations, "
        f"{ours[3]} connections from {ours[4]} flow records, CPU {float(ours[5]):.0f} s"
    )
    print(f"ratio to the limit: {our_rate / ref_rate:.2f}")
    # CPU seconds (user + sys) are less sensitive to other jobs on a shared machine.
    print(f"CPU-time ratio (reference CPU / ours): {float(ref[3]) / float(ours[5]):.2f}")


if __name__ == "__main__":
    main()
