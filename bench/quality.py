"""Recommendation quality on the simulator topologies, against two baselines.

For each topology: simulate (seeded), aggregate the training window, recommend,
build the two baselines from the same learning set, score all three on the
fresh window (after a rollout) against the truth, check rollout stability, and
write the table to docs/quality.md (or --out).

    .venv/bin/python bench/quality.py                       # webshop, saas, large:2000
    .venv/bin/python bench/quality.py --topology webshop    # one topology

Simulated data is cached under bench/work/ (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.evaluate.baselines import per_namespace, per_owner_exact  # noqa: E402
from recommender.evaluate.measure import score_policies  # noqa: E402
from recommender.inventory.files import read_inventory  # noqa: E402
from recommender.observe.factory import get_engine  # noqa: E402
from recommender.policy_io.policy_yaml import dump_policy_yaml  # noqa: E402
from recommender.recommend.pipeline import recommend  # noqa: E402
from recommender.recommend.synthesize import without_evidence  # noqa: E402
from recommender.simulate import SimOptions, load_topology, run_simulation  # noqa: E402

#: (topology, simulate options) -- windows and volumes chosen to finish in minutes here.
TOPOLOGIES: dict[str, dict[str, Any]] = {
    "webshop": {"window_s": 12 * 3600, "rate_scale": 0.05},
    "saas": {"window_s": 12 * 3600, "rate_scale": 0.05},
    "large:2000": {"window_s": 2 * 3600, "flows": 1_500_000},
}
#: Above this many workloads the baselines' over-permissiveness sweep is skipped.
MAX_BASELINE_SWEEP_WORKLOADS = 500
EDGE_KEY = [
    "src_kind",
    "src_namespace",
    "src_labels",
    "src_ip",
    "dst_kind",
    "dst_namespace",
    "dst_labels",
    "dst_ip",
    "port",
    "protocol",
]


def log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def simulate(name: str, seed: int) -> Path:
    out = ROOT / "bench" / "work" / f"quality-{name.replace(':', '-')}-s{seed}"
    if not (out / "truth.json").is_file():
        options = SimOptions(seed=seed, **TOPOLOGIES[name])
        run_simulation(load_topology(name), out, options, force=True, show_progress=True)
    return out


def edge_keys(frame: pd.DataFrame) -> pd.Series:
    return pd.Series(
        ["|".join(map(str, r)) for r in frame[EDGE_KEY].itertuples(index=False)], index=frame.index
    )


def stability(train: tuple[pd.DataFrame, Any], fresh: tuple[pd.DataFrame, Any]) -> dict[str, Any]:
    """Recommend from each window on the edges both saw; compare YAML without evidence."""
    common = set(edge_keys(train[0])) & set(edge_keys(fresh[0]))
    before = recommend(train[0][edge_keys(train[0]).isin(common)], train[1])
    after = recommend(fresh[0][edge_keys(fresh[0]).isin(common)], fresh[1])
    a = {p.key: dump_policy_yaml(without_evidence(p)) for p in before.policies}
    b = {p.key: dump_policy_yaml(without_evidence(p)) for p in after.policies}
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return {"policies": len(a), "differing": differing, "identical": not differing}


def run_topology(name: str, seed: int, only_ours: bool = False) -> dict[str, Any]:
    data = simulate(name, seed)
    truth = json.loads((data / "truth.json").read_text())
    engine = get_engine()
    inv = read_inventory([str(data / "inventory.json")])
    fresh_inv = read_inventory([str(data / "inventory-fresh.json")])
    t0 = time.perf_counter()
    train = engine.aggregate([str(data / "flows-train.jsonl.gz")], inv)
    t1 = time.perf_counter()
    rec = recommend(train.observations, inv)
    t2 = time.perf_counter()
    check = rec.self_check(inv)
    t3 = time.perf_counter()
    log(f"aggregate {t1 - t0:.1f} s, recommend {t2 - t1:.1f} s, self-check {t3 - t2:.1f} s")
    fresh = engine.aggregate([str(data / "flows-fresh.jsonl.gz")], fresh_inv)
    fresh_path = str(data / "flows-fresh.jsonl.gz")
    records = list(engine.read_flows([fresh_path], fresh_inv))  # read once, scored three times
    # The workload-pair sweep of the baselines is quadratic in workloads times their
    # (huge, per-pod) peer lists; on large topologies it is left out (reported n/a).
    sweep_baselines = len(truth["workloads"]) <= MAX_BASELINE_SWEEP_WORKLOADS
    rows = {}
    methods = [("netpol recommend", rec.policies, True)]
    if not only_ours:
        methods += [
            ("per-owner, exact pod peers", per_owner_exact(rec), sweep_baselines),
            ("per-namespace, peer namespaces", per_namespace(rec), sweep_baselines),
        ]
    for label, policies, sweep in methods:
        start = time.perf_counter()
        rows[label] = score_policies(policies, truth, fresh_path, fresh_inv, records, sweep)
        log(
            f"scored {label} in {time.perf_counter() - start:.1f} s: "
            + json.dumps(
                {
                    k: rows[label][k]
                    for k in ("false_deny", "block", "learned_attacks", "compactness")
                }
            )[:2000]
        )
    return {
        "topology": name,
        "seed": seed,
        "data": str(data.relative_to(ROOT)),
        "workloads": len(truth["workloads"]),
        "pods": len(inv.pods),
        "lines": truth.get("line_counts", {}),
        "observations": len(train.observations),
        "seconds": {
            "aggregate": round(t1 - t0, 1),
            "recommend": round(t2 - t1, 1),
            "self_check": round(t3 - t2, 1),
        },
        "self_check_ok": bool(check.ok),
        "stability": stability((train.observations, inv), (fresh.observations, fresh_inv)),
        "scores": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


def pct(t: dict[str, Any]) -> str:
    if not t["total"]:
        return "n/a"
    return f"{100 * t['denied'] / t['total']:.2f}% ({t['denied']}/{t['total']})"


def _triples(over: dict[str, Any]) -> str:
    if over["unobserved_allowed_triples"] is None:
        return "n/a (not swept)"
    return f"{over['unobserved_allowed_triples']} (+{over['dns_allowance_triples']})"


def _lines(r: dict[str, Any], name: str) -> str:
    value = (r.get("lines") or r.get("train_lines") or {}).get(name)
    return f"{value:,}" if isinstance(value, int) else "?"


def render(results: list[dict[str, Any]], command: str) -> str:
    out = [
        "# Recommendation quality",
        "",
        "Measured with the simulator's ground truth (DESIGN.md, \"How recommendations are "
        'judged"): recommend on the training window, then replay the fresh window (after a '
        "rollout: new pod names, IPs and `pod-template-hash`) with the exact semantics engine.",
        "",
        f"Command: `{command}` (2-core machine; data cached under `bench/work/`).",
        "",
        "Columns: *false-deny* is over legitimate fresh connections and over distinct "
        "legitimate edges seen in training (fresh-only edges apart); *block* is the share of "
        "illegitimate fresh flow records denied; *attacks allowed* are illegitimate edges of "
        "either window the policies allow; *unobserved triples* are (source workload, "
        "destination workload, port) triples allowed but never seen in training, with the "
        "namespace-wide DNS allowance counted apart; *extra addresses* are external addresses "
        "admitted beyond those observed (egress).",
        "",
        "Baselines (`recommender/evaluate/baselines.py`), built from the same filtered "
        "learning set "
        "and sharing the recommendation's default-deny and DNS policies: *per-owner, exact pod "
        "peers* writes one policy per owner workload whose peers are the exact pods seen (all "
        "their labels, `pod-template-hash` included), the way a per-pod recorder would; "
        "*per-namespace* writes one policy per namespace allowing the observed peer "
        "namespaces on the ports seen between them.",
        "",
        "Rollout stability is checked on the edges both windows saw: edges seen in one window "
        "only (fresh-only edges, a CronJob that picked other object-store addresses) "
        "legitimately change the rules, and are reported by shadow mode instead.",
        "",
    ]
    for r in results:
        out += [
            f"## {r['topology']} (seed {r['seed']})",
            "",
            f"{r['workloads']} workloads, {r['pods']} pods, "
            f"{_lines(r, 'flows-train.jsonl.gz')} training and "
            f"{_lines(r, 'flows-fresh.jsonl.gz')} fresh flow lines, "
            f"{r['observations']:,} observations in training. Aggregation "
            f"{r['seconds']['aggregate']} s, "
            f"recommendation {r['seconds']['recommend']} s, self-check "
            f"{r['seconds']['self_check']} s (ok: {r['self_check_ok']}); peak RSS of the "
            f"whole run {r['peak_rss_mb']} MB.",
            "",
            "| method | policies | rules | false-deny, connections | false-deny, trained "
            "edges | false-deny, fresh-only edges | block | attacks allowed | unobserved "
            "triples (+DNS) | extra addresses |",
            "|---|---:|---:|---|---|---|---|---:|---|---:|",
        ]
        for label, s in r["scores"].items():
            fd, over, comp = s["false_deny"], s["over_permissiveness"], s["compactness"]
            out.append(
                f"| {label} | {comp['policies']} | {comp['rules']} | {pct(fd['connections'])} | "
                f"{pct(fd['edges_trained'])} | {pct(fd['edges_fresh_only'])} | "
                f"{100 * (s['block']['rate'] or 0):.2f}% | {s['learned_attacks']['allowed']} | "
                f"{_triples(over)} | "
                f"{over['external_addresses_beyond_observed']} |"
            )
        st = r["stability"]
        denied = r["scores"]["netpol recommend"]["false_deny"]["denied_edges"]
        out += [
            "",
            f"Rollout stability (recommend from each window on the edges both saw, "
            f"compare YAML without evidence annotations): "
            f"{'identical' if st['identical'] else 'DIFFERENT: ' + ', '.join(st['differing'])}"
            f" ({st['policies']} policies).",
            "",
            f"Fresh-window edges the recommendation denies (reported by shadow mode, never "
            f"hidden): {len(denied)}: "
            + ", ".join(
                f"`{e['id']}` ({'trained' if e['trained'] else 'fresh-only'})" for e in denied
            )
            + ".",
            "",
        ]
    out.append(
        "How selectors are chosen so that they stay exact for workloads deployed later, "
        "and what that costs: `docs/selectors.md`."
    )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", action="append", choices=sorted(TOPOLOGIES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality.md"))
    parser.add_argument("--json", default=str(ROOT / "bench" / "work" / "quality.json"))
    parser.add_argument(
        "--only-ours",
        action="store_true",
        help="score only the recommendation (the baselines are slow on large)",
    )
    parser.add_argument(
        "--render-from",
        nargs="+",
        metavar="JSON",
        help="only render --out from results saved by earlier runs",
    )
    args = parser.parse_args()
    if args.render_from:
        saved = [r for path in args.render_from for r in json.loads(Path(path).read_text())]
        commands = "; ".join(f"python bench/quality.py --topology {r['topology']}" for r in saved)
        Path(args.out).write_text(render(saved, commands) + "\n")
        return 0
    names = args.topology or list(TOPOLOGIES)
    results = []
    for name in names:
        print(f"== {name}", file=sys.stderr)
        results.append(run_topology(name, args.seed, args.only_ours))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "scores"}), file=sys.stderr)
    command = "python bench/quality.py" + "".join(f" --topology {n}" for n in args.topology or [])
    Path(args.out).write_text(render(results, command) + "\n")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
