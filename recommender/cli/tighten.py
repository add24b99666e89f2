"""``netpol tighten``: propose a tighter policy set from a window of evidence.

Reads the current policies, the inventory and either flow files or the
observation store; writes the proposed set in the ``recommend`` layout plus
``TIGHTEN.md`` (and ``--json``). Nothing is loosened unless
``--accept-widening`` is given; the guarantees are checked before writing and
a failed check writes nothing (exit 1).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    add_inventory_argument,
    add_strict_argument,
    engine_from_args,
    non_negative_int,
)
from recommender.cli._evidence import add_window_end_argument, tighten_history
from recommender.cli._gates import (
    require_connections,
    require_pods,
    warn_if_mostly_rejected,
)
from recommender.errors import InputError
from recommender.policy_io.kinds import KINDS
from recommender.progress import Progress

if TYPE_CHECKING:  # pandas loads only when a command runs (start-up time)
    import pandas as pd

NAME = "tighten"
HELP = "prune and narrow current policies to what a window of evidence uses"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol tighten``."""
    parser.add_argument(
        "--policies",
        nargs="+",
        required=True,
        metavar="PATH",
        help="the current policy files or directories (YAML/JSON)",
    )
    add_inventory_argument(
        parser,
        nargs="+",
        required=True,
        metavar="FILE",
        help="kubectl get namespaces,pods,services,endpointslices -A -o json",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add_flows_argument(source, help="flow files, globs or - for stdin (plain or .gz)")
    source.add_argument("--store", metavar="PATH", help="observation store (netpol observe)")
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="with --store: window start, a duration back from the newest "
        "observation (14d, 36h) or a time (default: the whole store)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_force_argument(parser, "replace an existing DIR / --json")
    parser.add_argument("--json", metavar="OUT.json", help="the report as JSON")
    parser.add_argument(
        "--cidr-budget",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="addresses a narrowed ipBlock may admit beyond those seen "
        "(default 0: exact /32 and /128)",
    )
    parser.add_argument(
        "--public-ingress-min-sources",
        type=non_negative_int,
        default=16,
        metavar="N",
        help="an ingress ipBlock hit by N+ external sources is a public "
        "endpoint and is not narrowed; 0 = always narrow (default 16)",
    )
    parser.add_argument(
        "--prune-dns",
        action="store_true",
        help="prune and narrow DNS allowances too (default: keep, report)",
    )
    parser.add_argument(
        "--accept-widening",
        action="store_true",
        help="apply the widening proposals (legitimate flows the current set "
        "denies); without it they are only listed",
    )
    parser.add_argument(
        "--default-namespace", metavar="NS", help="namespace for policies that name none"
    )
    add_strict_argument(
        parser,
        action="store_true",
        help="stop with exit code 2 at the first rejected input line",
    )
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="networkpolicy",
        help="policy kind to write the proposal in (default networkpolicy)",
    )
    add_window_end_argument(parser)
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load, tighten, self-check, then write the tree (and JSON) atomically."""
    from recommender.inventory.files import read_inventory
    from recommender.policy_io.atomic import check_writable, write_json_atomic
    from recommender.policy_io.policy_writer import write_tree
    from recommender.policy_io.policy_yaml import load_policies
    from recommender.tighten import (
        TightenOptions,
        build_report,
        render_markdown,
        render_tighten_tree,
        tighten,
    )

    check_writable(args.out, args.force)
    if args.json:
        check_writable(args.json, args.force)
    if args.since and not args.store:
        raise InputError(None, "--since needs --store", hint="flow files are read whole")
    progress = Progress("tighten", total=4)
    progress.step("reading the inventory and policies")
    inventory = read_inventory(args.inventory)
    require_pods(inventory, args.inventory)
    loaded = load_policies(args.policies, default_namespace=args.default_namespace)
    note = loaded.skipped_note()
    if note:
        print(f"note: {note}", file=sys.stderr)
    if loaded.cilium:
        print(
            f"note: {len(loaded.cilium)} CiliumNetworkPolicies are not tightened", file=sys.stderr
        )
    if loaded.cluster:
        print(
            f"note: {len(loaded.cluster)} ClusterNetworkPolicies are not tightened", file=sys.stderr
        )
    if not loaded.policies:
        raise InputError(args.policies[0], "no NetworkPolicy found")
    progress.step("reading the evidence")
    observations, warnings = _evidence(args, inventory)
    options = TightenOptions(
        cidr_budget=args.cidr_budget,
        prune_dns=args.prune_dns,
        public_ingress_min_sources=args.public_ingress_min_sources,
        accept_widening=args.accept_widening,
    )
    history = tighten_history(args, inventory)
    progress.step("tightening and checking")
    result = tighten(loaded.policies, observations, inventory, options, history)
    if not result.check.ok:
        for v in result.check.violations[:10]:
            print(f"internal error: self-check: {v}", file=sys.stderr)
        print(
            "internal error: the proposal breaks a guarantee; nothing was written", file=sys.stderr
        )
        return 1
    progress.step("writing")
    report = build_report(result, _inputs(args), warnings)
    markdown = render_markdown(report)
    files = render_tighten_tree(result.proposed, markdown)
    if args.kind != "networkpolicy":
        files = _kind_tree(args.kind, result.proposed, markdown, inventory)
    write_tree(files, args.out, force=args.force)
    if args.json:
        write_json_atomic(args.json, report, args.force)
    progress.done()
    _print_summary(report, args.out, warnings)
    return 0


def _kind_tree(kind: str, proposed: Any, markdown: str, inventory: Any) -> dict[str, str]:
    """The proposal as ``kind`` objects, same layout as the NetworkPolicy tree."""
    from dataclasses import replace

    from recommender.policy_io.kinds.tree import render_kind_tree

    ordered = sorted((replace(p, source=None) for p in proposed), key=lambda p: p.key)
    files = render_kind_tree(kind, ordered, "", inventory)
    # Only --kind clusternetworkpolicy writes a summary of its own (what went cluster-wide).
    files["TIGHTEN.md"] = markdown + files.pop("SUMMARY.md", "")
    return dict(sorted(files.items()))


def _evidence(args: argparse.Namespace, inventory: Any) -> tuple[pd.DataFrame, list[str]]:
    """Observations of the window and the ingest warnings."""
    if args.store:
        from recommender.observe.store import read_store_observations, read_store_stats

        obs = read_store_observations(args.store, since=args.since)
        stats = read_store_stats(args.store, since=args.since)
        return obs, stats.warnings()

    result = engine_from_args(args).aggregate(args.flows, inventory, strict=args.strict)
    require_connections(result.stats, args.flows, "nothing to tighten from")
    warn_if_mostly_rejected(result.stats, args.flows)
    return result.observations, result.stats.warnings()


def _inputs(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"policies": list(args.policies), "inventory": list(args.inventory)}
    if args.store:
        out["store"] = args.store
        out["since"] = args.since
    else:
        out["flows"] = list(args.flows)
    return out


def _print_summary(report: dict[str, Any], out: str, warnings: list[str]) -> None:
    kinds: dict[str, int] = {}
    for c in report["changes"]:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    by = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
    w = report["window"]
    print(
        f"window {w['first_seen']} to {w['last_seen']}: {report['totals']['observations']} "
        f"observations; changes: {by}"
    )
    diff = report["semantic_diff"]
    if diff is not None:
        print(
            f"semantic diff: {diff['newly_allowed']} reachabilities newly allowed, "
            f"{diff['newly_denied']} newly denied"
        )
    widen = report["widening"]
    if widen:
        applied = sum(1 for x in widen if x["applied"])
        print(
            f"widening: {len(widen)} proposed, {applied} applied"
            + ("" if applied else " (pass --accept-widening to apply)")
        )
    print(f"wrote {out}/ ; review {out}/TIGHTEN.md")
    for note in report["kept"]:
        if note["kind"] == "unused-dns":
            print(f"note: {note['rule']}: {note['text']}", file=sys.stderr)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
