"""Over-permissiveness of generated selectors against hypothetical future workloads.

For each simulated topology: aggregate the training window, recommend, and take
every non-empty pod selector the policies carry (each policy's podSelector and
each peer's podSelector, in the namespaces the peer's namespaceSelector picks).
Then build hypothetical future workloads per namespace from the inventory and
count, per selector, how many of them it would admit:

* ``swap``: an existing workload's stable labels with one non-naming label value
  swapped to another value of that key seen in the namespace;
* ``other-app``: an existing workload's non-naming labels with another workload's
  naming labels ("same version, other app": a ratings-v2 next to reviews-v2);
* ``new-app``: an existing workload with every naming label value renamed (a new
  application deployed from a copied manifest).

The same count runs without flows on the label layouts of four real applications
whose upstream manifests are in tests/samples/apps (``--apps``): every workload's
own selector (what its policy's podSelector, or a peer naming it alone, carries)
and, for an application of several workloads (reviews v1..v3), the application's
selector. Upstream's own future workload is there too: bookinfo-ratings-v2.yaml
is exactly the ``other-app`` variant of reviews-v2.

Hypotheticals equal to an existing workload are dropped. An admission is *foreign*
when the hypothetical's application (its naming label values) is none of the
applications the selector selects today. Selector size is the number of terms
(matchLabels pairs plus matchExpressions) and the number of ``In`` values.

The same data is measured with two versions of the code: ``--code DIR`` imports
``recommender`` from DIR (for example an extracted older commit)::

    mkdir -p /tmp/sel-before && git archive 99e820a recommender | tar -x -C /tmp/sel-before
    python bench/selector_future.py --code /tmp/sel-before --json bench/work/sel-before.json
    python bench/selector_future.py --json bench/work/sel-after.json
    python bench/selector_future.py --compare bench/work/sel-before.json bench/work/sel-after.json
    # the same three commands with --apps (and other --json names) for the real layouts

Simulated data is shared with bench/quality.py (bench/work/quality-*-s11).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Same windows and volumes as bench/quality.py, so the simulated data is shared.
TOPOLOGIES: dict[str, dict[str, Any]] = {
    "webshop": {"window_s": 12 * 3600, "rate_scale": 0.05},
    "saas": {"window_s": 12 * 3600, "rate_scale": 0.05},
}
#: Keys that name an application (recommender.recommend.selectors.NAMING_KEYS and the secondary
#: key), spelled out here so that older code without them can be measured too.
NAMING = ("app.kubernetes.io/name", "app", "k8s-app", "name", "app.kubernetes.io/instance")
NEW_APP = "future-app"
APPS_DIR = ROOT / "tests" / "samples" / "apps"
#: Upstream manifests of real applications: the label layouts measured with --apps.
APPS: dict[str, list[str]] = {
    "bookinfo": ["bookinfo/upstream/samples/bookinfo/platform/kube/bookinfo.yaml"],
    "online-boutique": ["online-boutique/upstream/release/kubernetes-manifests.yaml"],
    "sock-shop": ["sock-shop/upstream/deploy/kubernetes/manifests/*-dep.yaml"],
    "otel-demo": ["otel-demo/upstream/kubernetes/opentelemetry-demo.yaml"],
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job")

Labels = dict[str, str]


def simulate(name: str, seed: int) -> Path:
    from recommender.simulate import SimOptions, load_topology, run_simulation

    out = ROOT / "bench" / "work" / f"quality-{name}-s{seed}"
    if not (out / "truth.json").is_file():
        options = SimOptions(seed=seed, **TOPOLOGIES[name])
        run_simulation(load_topology(name), out, options, force=True, show_progress=True)
    return out


def app_of(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The application a label set names: its naming pairs."""
    return tuple((k, labels[k]) for k in NAMING if k in labels)


def hypotheticals(workloads: list[Labels]) -> dict[str, list[Labels]]:
    """Future workloads of one namespace, by kind, none equal to an existing one."""
    existing = {tuple(sorted(w.items())) for w in workloads}
    values: dict[str, set[str]] = {}
    for w in workloads:
        for k, v in w.items():
            values.setdefault(k, set()).add(v)
    out: dict[str, dict[tuple[tuple[str, str], ...], Labels]] = {
        "swap": {},
        "other-app": {},
        "new-app": {},
    }
    for w in workloads:
        for kind, h in _variants(w, workloads, values):
            key = tuple(sorted(h.items()))
            if key not in existing:
                out[kind].setdefault(key, h)
    return {kind: [hs[k] for k in sorted(hs)] for kind, hs in out.items()}


def _variants(
    w: Labels, workloads: list[Labels], values: dict[str, set[str]]
) -> Iterator[tuple[str, Labels]]:
    rest = {k: v for k, v in w.items() if k not in NAMING}
    for k in sorted(rest):
        for v in sorted(values[k] - {w[k]}):
            yield "swap", {**w, k: v}
    for other in workloads:
        if app_of(other) and app_of(other) != app_of(w):
            yield "other-app", {**rest, **dict(app_of(other))}
    if app_of(w):
        yield "new-app", {**w, **{k: NEW_APP for k, _ in app_of(w)}}


def namespace_workloads(inv: Any) -> dict[str, list[Labels]]:
    from recommender.labels import stable_labels

    sets: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for pod in inv.pods:
        sets.setdefault(pod.namespace, set()).add(tuple(stable_labels(pod.labels).items()))
    return {ns: [dict(s) for s in sorted(v)] for ns, v in sorted(sets.items())}


def selectors(policies: list[Any], inv: Any) -> Iterator[tuple[str, list[str], Any]]:
    """(where, namespaces, pod selector) for every pod selector of the policies."""
    from recommender.labels import matches_selector, namespace_labels

    ns_labels = {n.name: namespace_labels(n.name, n.labels) for n in inv.namespaces}
    for p in policies:
        yield "policy", [p.namespace], p.pod_selector
        for rule in (*(p.ingress or ()), *(p.egress or ())):
            for peer in rule.peers or ():
                if peer.pod_selector is None:
                    continue
                if peer.namespace_selector is None:
                    yield "peer", [p.namespace], peer.pod_selector
                    continue
                names = sorted(
                    n
                    for n, lab in ns_labels.items()
                    if matches_selector(peer.namespace_selector, lab)
                )
                yield "peer", names, peer.pod_selector


def measure(policies: list[Any], inv: Any) -> dict[str, Any]:
    return measure_selectors(list(selectors(policies, inv)), namespace_workloads(inv))


def measure_selectors(
    sels: list[tuple[str, list[str], Any]], wls: dict[str, list[Labels]]
) -> dict[str, Any]:
    from recommender.labels import matches_selector

    hyp = {ns: hypotheticals(w) for ns, w in wls.items()}
    rows: list[dict[str, Any]] = []
    empty = 0
    for where, namespaces, sel in sels:
        if sel.is_empty:
            empty += 1
            continue
        row: dict[str, Any] = {
            "where": where,
            "terms": _terms(sel),
            "in_values": _in_values(sel),
            "text": _text(sel),
        }
        for ns in namespaces:
            apps = {app_of(w) for w in wls.get(ns, []) if matches_selector(sel, w)}
            for kind, hs in hyp.get(ns, {}).items():
                hit = [h for h in hs if matches_selector(sel, h)]
                row[kind] = row.get(kind, 0) + len(hit)
                row[f"{kind}-foreign"] = row.get(f"{kind}-foreign", 0) + sum(
                    app_of(h) not in apps for h in hit
                )
        rows.append(row)
    hyp_counts = {k: sum(len(h[k]) for h in hyp.values()) for k in ("swap", "other-app", "new-app")}
    return {"selectors": rows, "empty_selectors": empty, "hypotheticals": hyp_counts}


def _terms(sel: Any) -> int:
    return len(sel.match_labels or ()) + len(sel.match_expressions or ())


def _text(sel: Any) -> str:
    from recommender.recommend.selectors import selector_labels_text

    return selector_labels_text(sel)


def _in_values(sel: Any) -> int:
    return sum(len(r.values) for r in sel.match_expressions or () if r.operator == "In")


def run(name: str, seed: int) -> dict[str, Any]:
    from recommender.inventory.files import read_inventory
    from recommender.observe.factory import get_engine
    from recommender.recommend.pipeline import recommend

    data = simulate(name, seed)
    inv = read_inventory([str(data / "inventory.json")])
    train = get_engine().aggregate([str(data / "flows-train.jsonl.gz")], inv)
    rec = recommend(train.observations, inv)
    out = measure(list(rec.policies), inv)
    out.update({"topology": name, "seed": seed, "policies": len(rec.policies)})
    return out


def manifest_workloads(name: str) -> dict[str, list[Labels]]:
    """Namespace -> distinct stable pod-template label sets of one application's manifests."""
    import yaml

    from recommender.labels import stable_labels

    sets: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for pattern in APPS[name]:
        for path in sorted(APPS_DIR.glob(pattern)):
            for doc in yaml.safe_load_all(path.read_text()):
                if not isinstance(doc, dict) or doc.get("kind") not in WORKLOAD_KINDS:
                    continue
                meta = doc.get("metadata") or {}
                tpl = ((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}
                labels = stable_labels(
                    {str(k): str(v) for k, v in (tpl.get("labels") or {}).items()}
                )
                ns = meta.get("namespace") or "default"
                sets.setdefault(ns, set()).add(tuple(labels.items()))
    return {ns: [dict(s) for s in sorted(v)] for ns, v in sorted(sets.items())}


def app_selectors(wls: dict[str, list[Labels]]) -> Iterator[tuple[str, list[str], Any]]:
    """Each workload's own selector, and each multi-workload application's selector."""
    from recommender.recommend.selectors import find_selector

    for ns, workloads in wls.items():
        groups = [[w] for w in workloads]
        by_app: dict[tuple[tuple[str, str], ...], list[Labels]] = {}
        for w in workloads:
            by_app.setdefault(app_of(w), []).append(w)
        groups += [g for app, g in sorted(by_app.items()) if app and len(g) > 1]
        for group in groups:
            choice = find_selector(group, [w for w in workloads if w not in group])
            if choice is not None:
                yield ("workload" if len(group) == 1 else "application"), [ns], choice.selector


def run_app(name: str) -> dict[str, Any]:
    wls = manifest_workloads(name)
    out = measure_selectors(list(app_selectors(wls)), wls)
    out.update({"topology": name, "seed": None, "policies": 0})
    return out


KINDS = ("swap", "other-app", "new-app")


def summary(r: dict[str, Any]) -> dict[str, Any]:
    rows = r["selectors"]
    n = len(rows)
    out: dict[str, Any] = {"selectors": n, "empty": r["empty_selectors"]}
    for kind in KINDS:
        out[kind] = sum(s.get(kind, 0) for s in rows)
        out[f"{kind}-foreign"] = sum(s.get(f"{kind}-foreign", 0) for s in rows)
    out["admitting-foreign"] = sum(any(s.get(f"{k}-foreign", 0) for k in KINDS) for s in rows)
    out["terms-mean"] = sum(s["terms"] for s in rows) / n if n else 0.0
    out["terms-max"] = max((s["terms"] for s in rows), default=0)
    out["in-max"] = max((s["in_values"] for s in rows), default=0)
    out["with-in"] = sum(bool(s["in_values"]) for s in rows)
    return out


def render(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    head = (
        "| topology | code | policies | selectors (+ empty) | swap admitted (foreign) | "
        "other-app admitted (foreign) | new-app admitted | selectors admitting a foreign "
        "app | terms per selector, mean / max | selectors with In (max values) |"
    )
    lines = [head, "|---|---|---:|---|---|---|---:|---|---|---|"]
    for b, a in zip(before, after, strict=True):
        for label, r in (("before", b), ("after", a)):
            s = summary(r)
            lines.append(
                f"| {r['topology']} | {label} | {r['policies']} | {s['selectors']} "
                f"(+{s['empty']}) | {s['swap']} ({s['swap-foreign']}) | {s['other-app']} "
                f"({s['other-app-foreign']}) | {s['new-app']} | {s['admitting-foreign']} | "
                f"{s['terms-mean']:.2f} / {s['terms-max']} | {s['with-in']} ({s['in-max']}) |"
            )
    hyp = ", ".join(
        f"{r['topology']}: " + ", ".join(f"{v} {k}" for k, v in r["hypotheticals"].items())
        for r in after
    )
    return "\n".join(lines) + f"\n\nHypothetical workloads per topology: {hyp}.\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", action="append", choices=sorted(TOPOLOGIES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--code", help="import recommender from this directory")
    parser.add_argument(
        "--apps",
        action="store_true",
        help="measure the real applications' label layouts (no flows)",
    )
    parser.add_argument("--json", help="write the per-selector results here")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("BEFORE", "AFTER"),
        help="render the markdown table from two --json results",
    )
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(Path(p).read_text()) for p in args.compare)
        print(render(before, after))
        return 0
    sys.path.insert(0, str(Path(args.code).resolve()) if args.code else str(ROOT))
    if args.apps:
        results = [run_app(name) for name in APPS]
    else:
        results = [run(name, args.seed) for name in args.topology or list(TOPOLOGIES)]
    for r in results:
        print(json.dumps({"topology": r["topology"], **summary(r)}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
