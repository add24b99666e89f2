"""``netpol diff OLD NEW``: a semantic diff of two policy sets over the inventory.

Exit codes: 0 (whatever the diff says); 2 for bad input; 3 with
``--fail-on-change`` when the sets are not equivalent on this universe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    add_strict_argument,
    engine_from_args,
)
from recommender.cli._gates import (
    print_namespace_hint,
    require_connections,
    warn_if_mostly_rejected,
)
from recommender.cli.lint import add_inventory_arguments, load_inventory_arg
from recommender.diff import (
    DiffResult,
    Engine,
    FlowReplay,
    build_universe,
    compile_pair,
    diff_policies,
)
from recommender.diff.kinds import PolicyKinds, build_kinds_universe, diff_kinds
from recommender.errors import GateFailed, InputError, PolicyError
from recommender.lint.source import locate_error
from recommender.model import Inventory
from recommender.policy_io.atomic import check_writable, write_json_atomic, write_text_atomic
from recommender.policy_io.policy_yaml import load_policies
from recommender.progress import Progress
from recommender.report.diff import build_report, render_markdown, render_text

NAME = "diff"
HELP = "semantic diff of two policy sets: which reachabilities and observed flows change"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol diff``."""
    parser.add_argument("old", metavar="OLD", help="policy file or directory (before)")
    parser.add_argument("new", metavar="NEW", help="policy file or directory (after)")
    add_inventory_arguments(parser)
    add_flows_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="flow files, globs or - for stdin: report observed flows whose "
        "verdict changes and add their ports and addresses to the universe",
    )
    parser.add_argument("--json", metavar="OUT.json", help="the report as JSON")
    parser.add_argument("--markdown", metavar="OUT.md", help="the report as Markdown (for a PR)")
    parser.add_argument(
        "--fail-on-change", action="store_true", help="exit 3 when the two sets are not equivalent"
    )
    add_strict_argument(
        parser,
        action="store_true",
        help="stop with exit code 2 at the first rejected flow line",
    )
    add_engine_arguments(parser)
    add_force_argument(parser, "replace existing output files")


def load_set(path: str, default_namespace: str | None) -> PolicyKinds:
    """Policies of every kind on one side; an invalid policy is an input error located by line."""
    try:
        loaded = load_policies([path], default_namespace=default_namespace)
    except PolicyError as exc:
        raise locate_error(exc) from exc
    note = loaded.skipped_note()
    if note:
        print(f"note: {path}: {note}", file=sys.stderr)
    kinds = PolicyKinds(tuple(loaded.policies), tuple(loaded.cilium), tuple(loaded.cluster))
    if not len(kinds) and loaded.skipped:  # objects, none a policy: the wrong file
        raise InputError(
            path,
            f"no policy found ({len(loaded.skipped)} other objects skipped)",
            hint="an empty file or directory stands for no policies",
        )
    return kinds


def run(args: argparse.Namespace) -> int:
    """Load both sets, replay flows, diff, write, gate."""
    for target in (args.json, args.markdown):
        if target:
            check_writable(target, args.force)
    inventory = load_inventory_arg(args)
    old = load_set(args.old, args.default_namespace)
    new = load_set(args.new, args.default_namespace)
    namespaces = [p.namespace for k in (old, new) for p in k.policies]
    namespaces += [p.namespace for k in (old, new) for p in k.cilium]
    print_namespace_hint(namespaces, inventory, args.default_namespace)
    if old.other_kinds or new.other_kinds:
        result = _diff_kinds(old, new, inventory, args)
    else:
        result = _diff_v1(old, new, inventory, args)
    report = build_report(result, _inputs(args, old, new))
    if args.json:
        write_json_atomic(args.json, report, args.force)
    if args.markdown:
        write_text_atomic(args.markdown, render_markdown(report), args.force)
    sys.stdout.write(render_text(report))
    if args.fail_on_change and not result.equivalent:
        c = result.counts()
        raise GateFailed(
            f"diff: not equivalent ({c['newly_allowed']} newly allowed, "
            f"{c['newly_denied']} newly denied)"
        )
    return 0


def _diff_v1(
    old: PolicyKinds, new: PolicyKinds, inventory: Inventory, args: argparse.Namespace
) -> DiffResult:
    """NetworkPolicy only: the v1 diff, with its finer pruning."""
    compiled = compile_pair(old.policies, new.policies, inventory)
    replay = _replay(args.flows, compiled, inventory, args) if args.flows else None
    universe = build_universe(
        old.policies,
        new.policies,
        inventory,
        replay.ports if replay else (),
        replay.ips if replay else (),
    )
    result = diff_policies(old.policies, new.policies, inventory, universe, compiled)
    if replay is not None:
        result.flow_changes, result.flow_totals = replay.changes(), replay.totals()
    return result


def _diff_kinds(
    old: PolicyKinds, new: PolicyKinds, inventory: Inventory, args: argparse.Namespace
) -> DiffResult:
    """A CiliumNetworkPolicy or ClusterNetworkPolicy on either side: shadow's engine."""
    compiled = (old.compile(inventory), new.compile(inventory))
    replay = _replay(args.flows, compiled, inventory, args) if args.flows else None
    universe = build_kinds_universe(
        old,
        new,
        inventory,
        replay.ports if replay else (),
        replay.ips if replay else (),
        compiled,
    )
    result = diff_kinds(old, new, inventory, universe, compiled)
    if replay is not None:
        result.flow_changes, result.flow_totals = replay.changes(), replay.totals()
    return result


def _replay(
    flows: Sequence[str],
    compiled: tuple[Engine, Engine],
    inventory: Inventory,
    args: argparse.Namespace,
) -> FlowReplay:

    old_ps, new_ps = compiled
    replay = FlowReplay(old_ps, new_ps, inventory)
    table = engine_from_args(args).read_flows(list(flows), inventory, strict=args.strict)
    progress = Progress("diff: flow records", stream=sys.stderr)  # the current stderr
    for batch in table:
        replay.add(batch)
        progress.update(len(batch))
    progress.done()
    require_connections(table.stats, flows, "no observed flow to replay against the two sets")
    warn_if_mostly_rejected(table.stats, flows)
    for warning in table.stats.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    return replay


def _inputs(args: argparse.Namespace, old: PolicyKinds, new: PolicyKinds) -> dict[str, object]:
    out: dict[str, object] = {
        "old": [args.old],
        "new": [args.new],
        "old_policies": len(old),
        "new_policies": len(new),
        "inventory": list(args.inventory or args.manifests),
    }
    if old.other_kinds or new.other_kinds:
        out["old_kinds"], out["new_kinds"] = old.counts(), new.counts()
    if args.flows:
        out["flows"] = list(args.flows)
    return out
