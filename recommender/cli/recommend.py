"""``netpol recommend``: flows + inventory -> a reviewed, self-checked policy tree.

Exit codes: 0; 1 when the self-check finds that a learned observation would be
denied (an internal error; nothing is written); 2 for bad input; 3 with
``--fail-on-deny`` for that same case, or when traffic that flowed but was not
learned (unknown peer, Cilium identity) would be denied by the output.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    add_store_arguments,
    add_strict_argument,
    engine_from_args,
    non_negative_int,
)
from recommender.cli._evidence import (
    add_coverage_arguments,
    add_window_end_argument,
    apply_coverage,
    check_gap,
    evidence_input,
)
from recommender.cli._gates import require_connections
from recommender.cli.lint import add_inventory_arguments, load_inventory_arg
from recommender.errors import GateFailed
from recommender.policy_io.atomic import write_json_atomic
from recommender.policy_io.kinds import KINDS
from recommender.progress import Progress

if TYPE_CHECKING:
    from recommender.recommend.pipeline import Recommendation
    from recommender.recommend.selfcheck import SelfCheck

NAME = "recommend"
#: Warnings printed on the terminal; SUMMARY.md lists them all.
MAX_WARNINGS_SHOWN = 10
HELP = "learn least-privilege NetworkPolicies from flows and an inventory"


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol recommend``."""
    add_flows_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="flow files, globs or - for stdin (plain or .gz); or use --store",
    )
    add_store_arguments(parser)
    add_inventory_arguments(parser)  # --inventory or --manifests, --default-namespace
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_force_argument(parser, "replace an existing DIR")
    parser.add_argument(
        "--namespace",
        action="append",
        default=[],
        metavar="NS",
        help="write policies only for NS (repeatable; default: all but system)",
    )
    parser.add_argument(
        "--exclude-namespace",
        action="append",
        default=[],
        metavar="NS",
        help="write no policies for NS (repeatable)",
    )
    parser.add_argument(
        "--merge-similar",
        type=_threshold,
        metavar="T",
        help="merge groups whose edge sets are closer than Jaccard distance T",
    )
    parser.add_argument(
        "--cidr-budget",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="external addresses a CIDR may admit beyond those seen, per group "
        "and direction (default 0: exact /32 and /128)",
    )
    parser.add_argument(
        "--named-ports", action="store_true", help="use port names every destination pod declares"
    )
    parser.add_argument(
        "--port-ranges",
        action="store_true",
        help="write runs of consecutive ports as port/endPort ranges",
    )
    parser.add_argument(
        "--allow-host",
        action="store_true",
        help="allow ingress from node addresses (kubelet probes)",
    )
    parser.add_argument(
        "--public-ingress-min-sources",
        type=non_negative_int,
        default=16,
        metavar="N",
        help="ingress from N+ distinct external addresses becomes 0.0.0.0/0 "
        "minus pod networks (a public endpoint); 0 = never (default 16)",
    )
    parser.add_argument(
        "--include-suspicious",
        action="store_true",
        help="learn scan-shaped traffic too (it is excluded by default)",
    )
    parser.add_argument(
        "--json",
        metavar="OUT.json",
        help="also write the accounting (learned, excluded, unknown per "
        "namespace and group) and the self-check as JSON",
    )
    parser.add_argument(
        "--fail-on-deny",
        action="store_true",
        help="exit 3 when the output would deny observed traffic: a learned "
        "observation (nothing is written) or unlearned traffic that flowed",
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
        help="policy kind to write (default networkpolicy); docs/policy_kinds.md",
    )
    add_coverage_arguments(parser)
    add_window_end_argument(parser)
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Ingest, recommend, self-check, then write the tree atomically."""
    from recommender.observe.store.options import observations_from_args
    from recommender.policy_io.atomic import check_writable
    from recommender.recommend.pipeline import RecommendOptions, recommend

    check_writable(args.out, args.force)  # fail before a long run
    if args.json:
        check_writable(args.json, args.force)
    progress = Progress("recommend", total=4)
    progress.step("reading the inventory")
    inventory = load_inventory_arg(args)  # refuses an inventory without pods
    progress.step("reading the flows")
    engine = engine_from_args(args)
    result = observations_from_args(args, inventory, strict=args.strict, engine=engine)
    require_connections(result.stats, args.flows, "nothing to learn from; nothing was written")
    options = RecommendOptions(
        namespaces=tuple(args.namespace),
        exclude_namespaces=tuple(args.exclude_namespace),
        merge_similar=args.merge_similar,
        cidr_budget=args.cidr_budget,
        named_ports=args.named_ports,
        port_ranges=args.port_ranges,
        allow_host=args.allow_host,
        include_suspicious=args.include_suspicious,
        public_ingress_min_sources=args.public_ingress_min_sources,
    )
    evidence = evidence_input(args, inventory, engine)
    progress.step("learning policies and checking them")
    rec = recommend(result.observations, inventory, options, evidence)
    rec.warnings.extend(result.stats.warnings())
    coverage = apply_coverage(rec, result.stats, args.deny_unobserved, bool(args.manifests))
    if args.kind == "networkpolicy":
        from recommender.recommend.own_node import unexpressible_in_v1

        rec.unexpressible = unexpressible_in_v1(rec, inventory)
    check = rec.self_check(inventory)
    if not check.ok:
        if args.fail_on_deny and check.denied_learned and not check.findings:
            raise GateFailed(f"{check.message()}; nothing was written")
        print(f"internal error: {check.message()}; nothing was written", file=sys.stderr)
        return 1
    progress.step("writing")
    path = _write(rec, args, check, inventory)
    if args.json:
        write_json_atomic(
            args.json,
            recommendation_json(rec, check),
            args.force,
        )
    progress.done()
    _report(rec, check, str(path))
    if args.fail_on_deny and check.denied_unknown:
        raise GateFailed(
            f"recommend: {len(check.denied_unknown)} observation(s) of traffic that "
            "flowed but was not learned would be denied (see SUMMARY.md)"
        )
    check_gap(coverage, args.fail_on_gap)
    return 0


def _write(rec: Recommendation, args: argparse.Namespace, check: SelfCheck, inventory: Any) -> Any:
    """The tree in the chosen ``--kind`` (networkpolicy: the v1 writer, unchanged)."""
    from recommender.policy_io.kinds.tree import render_kind_tree
    from recommender.policy_io.policy_writer import write_recommendation, write_tree

    if args.kind == "networkpolicy":
        return write_recommendation(rec, args.out, force=args.force, check=check)
    files = render_kind_tree(args.kind, rec.policies, rec.summary_markdown(check), inventory)
    return write_tree(files, args.out, force=args.force)


def recommendation_json(rec: Recommendation, check: SelfCheck) -> dict[str, Any]:
    """The ``--json`` document: accounting, policies per namespace, the self-check,
    the evidence sufficiency."""
    from recommender.recommend.stability_render import current_stability, stability_json

    stability = current_stability(rec)
    return {
        "accounting": rec.accounting.to_json(),
        "accounting_problems": rec.accounting.problems(),
        "namespaces": rec.namespaces,
        "policies": [f"{p.namespace}/{p.name}" for p in rec.policies],
        "groups": [
            {
                "namespace": g.namespace,
                "name": g.name,
                "edges": len(g.edges),
                "members": [m.name for m in g.members],
                "state": stability.state_of(g.namespace, g.name) if stability else None,
            }
            for g in rec.groups
        ],
        "self_check": {
            "learned_replayed": check.checked_learned,
            "learned_denied": list(check.denied_learned),
            "excluded_allowed": list(check.allowed_excluded),
            "unlearned_denied": list(check.denied_unknown),
            "findings": list(check.findings),
        },
        "warnings": rec.warnings,
        "evidence": stability_json(stability) if stability is not None else None,
        **_unexpressible_json(rec),
    }


def _unexpressible_json(rec: Recommendation) -> dict[str, Any]:
    """``unexpressible_v1`` (kind networkpolicy only): own-node traffic v1 cannot deny."""
    if rec.unexpressible is None:
        return {}
    edges = rec.unexpressible
    return {
        "unexpressible_v1": {
            "why": "NetworkPolicy v1 always allows traffic between a pod and its own node",
            "edges_count": len(edges),
            "connections": sum(e.connections for e in edges),
            "edges": [e.to_json() for e in edges],
        }
    }


def _report(rec: Recommendation, check: SelfCheck, path: str) -> None:
    print(
        f"wrote {len(rec.policies)} policies for {len(rec.namespaces)} namespace(s) "
        f"({len(rec.groups)} groups) to {path}/ ; review {path}/SUMMARY.md"
    )
    print(
        f"learned {len(rec.learned)} observations, excluded {len(rec.excluded)}; "
        f"self-check: {check.checked_learned} learned observations allowed"
    )
    acc = rec.accounting
    print(
        f"accounting: {acc.total} observations = {acc.outcomes['learned']} learned + "
        f"{acc.outcomes['excluded']} excluded + {acc.outcomes['unknown']} unknown"
    )
    if rec.unexpressible:
        print(
            f"note: {len(rec.unexpressible)} observed edges between a pod and its own node "
            "are unexpressible in NetworkPolicy v1 (always allowed); see SUMMARY.md",
            file=sys.stderr,
        )
    for allowed in check.allowed_excluded:
        print(f"warning: the output would allow excluded traffic: {allowed}", file=sys.stderr)
    for denied in check.denied_unknown[:MAX_WARNINGS_SHOWN]:
        print(
            f"WARNING: traffic that flowed but was not learned would be denied: {denied}",
            file=sys.stderr,
        )
    for warning in rec.warnings[:MAX_WARNINGS_SHOWN]:
        print(f"warning: {warning}", file=sys.stderr)
    if len(rec.warnings) > MAX_WARNINGS_SHOWN:
        print(
            f"warning: ... and {len(rec.warnings) - MAX_WARNINGS_SHOWN} more; every warning "
            f"is listed in {path}/SUMMARY.md",
            file=sys.stderr,
        )
