"""``netpol shadow``: replay flows against candidate policies offline, report what breaks.

Exit codes: 0; 2 for bad input; 3 with ``--fail-on-deny`` when an observed flow
that the baseline allows (any observed flow, without ``--baseline``) would be
denied by the candidate. Flows the CNI already dropped for policy never trip the gate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    add_inventory_argument,
    add_store_arguments,
    add_strict_argument,
    engine_from_args,
)
from recommender.cli._follow import add_follow_arguments, check_follow_arguments
from recommender.cli._gates import (
    print_namespace_hint,
    require_connections,
    require_pods,
    warn_if_mostly_rejected,
)
from recommender.errors import GateFailed, InputError
from recommender.model import Inventory
from recommender.observe.engines.base import IngestStats
from recommender.policy_io.atomic import check_writable, write_json_atomic, write_text_atomic
from recommender.policy_io.policy_yaml import load_policies
from recommender.progress import Progress
from recommender.semantics import PolicySet
from recommender.semantics.cnp import compile_all_kinds

if TYPE_CHECKING:
    from recommender.shadow.core import ShadowRun

NAME = "shadow"
HELP = "replay flows against candidate policies offline and report what would be denied"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol shadow``."""
    parser.add_argument(
        "--policies",
        nargs="+",
        required=True,
        metavar="PATH",
        help="candidate policy files or directories (YAML/JSON)",
    )
    add_inventory_argument(
        parser,
        nargs="+",
        required=True,
        metavar="FILE",
        help="kubectl get ... -o json List file(s)",
    )
    add_flows_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="flow files, globs or - for stdin (plain or .gz); or use --store "
        "(then each verdict line stands for one stored observation)",
    )
    add_store_arguments(parser)
    parser.add_argument(
        "--baseline",
        nargs="+",
        metavar="PATH",
        help="the policies enforced today, to report verdict changes",
    )
    parser.add_argument(
        "--verdicts", metavar="OUT.jsonl", help="one JSON line per flow record, in input order"
    )
    parser.add_argument("--report", metavar="OUT.md", help="Markdown report")
    parser.add_argument("--json", metavar="OUT.json", help="the report as JSON")
    parser.add_argument(
        "--fail-on-deny",
        action="store_true",
        help="exit 3 if observed traffic (allowed by the baseline) would be denied",
    )
    parser.add_argument(
        "--default-namespace", metavar="NS", help="namespace for policies that name none"
    )
    add_strict_argument(
        parser,
        action="store_true",
        help="stop with exit code 2 at the first rejected input line",
    )
    add_engine_arguments(parser)
    add_follow_arguments(parser)
    add_force_argument(parser, "replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Load, judge every batch, write the outputs, apply the gate."""
    check_follow_arguments(args)
    for target in (args.verdicts, args.report, args.json):
        if target:
            check_writable(target, args.force)
    from recommender.inventory.files import read_inventory
    from recommender.observe.store.options import flow_table_from_args
    from recommender.report.shadow import build_report, render_markdown
    from recommender.shadow.core import ShadowRun, uncovered

    inventory = read_inventory(args.inventory)
    require_pods(inventory, args.inventory)
    candidate, n_candidate = _compile(args.policies, inventory, args.default_namespace)
    if not n_candidate:
        raise InputError(
            ", ".join(args.policies),
            "no NetworkPolicy found in the candidate "
            "policies: every flow would be allowed, so nothing can be judged",
        )
    baseline = None
    if args.baseline:
        baseline, _ = _compile(args.baseline, inventory, args.default_namespace)
    shadow = ShadowRun(candidate, inventory, baseline)
    if args.follow:
        from recommender.cli._follow import judge_followed

        stats = judge_followed(
            args, shadow, inventory, engine_from_args(args), lambda s: _usable(s, args)
        )
    else:
        table = flow_table_from_args(
            args, inventory, strict=args.strict, engine=engine_from_args(args)
        )
        _judge_all(shadow, table, args.verdicts, args.force, lambda: _usable(table.stats, args))
        stats = table.stats
    inputs: dict[str, Any] = {
        "policies": list(args.policies),
        "candidate policies": n_candidate,
        "flows": list(args.flows) if args.flows else f"store {args.store}",
        "inventory": list(args.inventory),
    }
    if args.baseline:
        inputs["baseline"] = list(args.baseline)
    report = build_report(shadow, uncovered(candidate), inputs, _ingest_summary(stats))
    if args.report:
        write_text_atomic(args.report, render_markdown(report), args.force)
    if args.json:
        write_json_atomic(args.json, report, args.force)
    _print_summary(report, stats)
    gate = report["totals"]["gate_records"]
    if args.fail_on_deny and gate:
        against = "that the baseline allows " if baseline is not None else ""
        raise GateFailed(
            f"shadow: {gate:,} observed flow records {against}would be denied "
            "by the candidate policies (see the report)"
        )
    return 0


def _compile(
    paths: list[str], inventory: Inventory, default_ns: str | None
) -> tuple[PolicySet, int]:
    loaded = load_policies(paths, default_namespace=default_ns)
    note = loaded.skipped_note()
    if note:
        print(f"note: {note}", file=sys.stderr)
    print_namespace_hint((p.namespace for p in loaded.policies), inventory, default_ns)
    compiled = compile_all_kinds(loaded.policies, loaded.cilium, loaded.cluster, inventory)
    return compiled, len(loaded.policies) + len(loaded.cilium) + len(loaded.cluster)  # type: ignore[return-value]


def _usable(stats: IngestStats, args: argparse.Namespace) -> None:
    """Fail closed: a gate that passes on no data is worse than no gate."""
    flows = list(args.flows) if args.flows else None
    what = "nothing was judged" + (
        ", so the --fail-on-deny gate cannot pass" if args.fail_on_deny else ""
    )
    require_connections(stats, flows, what)
    warn_if_mostly_rejected(stats, flows)


def _judge_all(
    shadow: ShadowRun, table: Any, verdicts: str | None, force: bool, check: Any
) -> None:
    """Judge the batches in order, streaming verdict lines to a temp file renamed at the
    end (after ``check`` accepted the input)."""
    progress = Progress("shadow: records")
    if verdicts is None:
        for batch in table:
            shadow.evaluate(batch)
            progress.update(len(batch))
        progress.done()
        check()
        return
    target = Path(verdicts)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for batch in table:
                rows = shadow.evaluate(batch).to_dict(orient="records")
                out.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))
                progress.update(len(rows))
        progress.done()
        check()
        check_writable(target, force)
        os.replace(tmp, target)
    finally:
        progress.done()
        if os.path.exists(tmp):
            os.unlink(tmp)


def _ingest_summary(stats: IngestStats) -> dict[str, Any]:
    return {
        "lines read": stats.lines,
        "flow records": stats.flow_records,
        "rejected lines": stats.rejected,
        "non-flow lines": sum(stats.non_flow.values()),
        "lost events": stats.lost_events,
    }


def _print_summary(report: dict[str, Any], stats: IngestStats) -> None:
    t = report["totals"]
    by = ", ".join(f"{k} {v:,}" for k, v in t["connections_by_verdict"].items()) or "none"
    print(
        f"records: {t['records']:,} ({t['reply_records']:,} replies); connections: "
        f"{t['connections']:,} ({by})"
    )
    print(
        f"would be denied: {t['would_deny_connections']:,} connections on "
        f"{len(report['would_be_denied'])} edges; unknown edges: {len(report['unknown'])}; "
        f"CNI-dropped records: {t['cni_dropped_records']:,}"
    )
    for direction, pods in report["uncovered_pods"].items():
        print(f"pods no policy covers ({direction}): {len(pods)}")
    if "verdict_changes" in report:
        print(f"edges whose verdict changes from the baseline: {len(report['verdict_changes'])}")
    for warning in stats.warnings():
        print(f"warning: {warning}", file=sys.stderr)
