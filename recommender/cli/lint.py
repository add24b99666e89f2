"""``netpol lint``: findings about a policy set against an inventory.

Exit codes: 0; 2 for bad input (missing file, unreadable YAML); 3 when a finding
is at least as severe as ``--fail-on`` (default: error). Invalid policies are
findings (``NP1xx`` ids, severity error), not input errors: lint reports them
all instead of stopping at the first.
"""

from __future__ import annotations

import argparse
import sys

from recommender.cli._args import add_force_argument, add_inventory_argument
from recommender.cli._gates import print_namespace_hint
from recommender.errors import GateFailed, InputError
from recommender.lint import KindDoc, lint_docs, read_policy_docs
from recommender.model import Inventory
from recommender.policy_io.atomic import check_writable, write_json_atomic
from recommender.policy_io.sarif import to_sarif
from recommender.progress import Progress
from recommender.report.lint import render_text, report_dict

NAME = "lint"
HELP = "check policies for risky, ineffective, redundant or invalid rules"


def add_inventory_arguments(parser: argparse.ArgumentParser) -> None:
    """``--inventory`` or ``--manifests`` (shared by lint and diff)."""
    group = parser.add_mutually_exclusive_group(required=True)
    add_inventory_argument(
        group, help="kubectl get namespaces,pods,services,... -A -o json file(s)"
    )
    group.add_argument(
        "--manifests",
        nargs="+",
        metavar="PATH",
        help="app manifests instead: a SYNTHETIC inventory of the pods they create",
    )
    parser.add_argument(
        "--default-namespace",
        metavar="NS",
        help="namespace for policies (and manifests) that name none",
    )


def load_inventory_arg(args: argparse.Namespace) -> Inventory:
    """The inventory from ``--inventory`` or ``--manifests``."""
    from recommender.cli._gates import require_pods

    if args.inventory:
        from recommender.inventory.files import read_inventory

        inventory = read_inventory(args.inventory)
    else:
        from recommender.inventory.manifests import inventory_from_manifests

        inventory = inventory_from_manifests(args.manifests, args.default_namespace or "default")
    require_pods(inventory, args.inventory or args.manifests)
    return inventory


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol lint``."""
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="policy files or directories (YAML/JSON)"
    )
    add_inventory_arguments(parser)
    parser.add_argument(
        "--namespace",
        action="append",
        metavar="NS",
        help="limit default-deny, coverage and DNS checks to these namespaces",
    )
    parser.add_argument("--json", metavar="OUT.json", help="findings as JSON")
    parser.add_argument("--sarif", metavar="OUT.sarif", help="findings as SARIF 2.1.0")
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "note", "never"),
        default="error",
        help="exit 3 on findings this severe (default: error)",
    )
    parser.add_argument(
        "--no-redundancy",
        action="store_true",
        help="skip the redundant policy/rule checks (the slowest)",
    )
    add_force_argument(parser, "replace existing output files")


def run(args: argparse.Namespace) -> int:
    """Read, lint, write, gate."""
    for target in (args.json, args.sarif):
        if target:
            check_writable(target, args.force)
    progress = Progress("lint", total=3)
    progress.step("reading the inventory")
    inventory = load_inventory_arg(args)
    progress.step("reading the policies")
    kinds: list[KindDoc] = []
    docs, skipped = read_policy_docs(args.paths, args.default_namespace, kinds)
    if not docs and not kinds:
        raise InputError(
            ", ".join(args.paths),
            "no policy found (NetworkPolicy, CiliumNetworkPolicy, ClusterNetworkPolicy)",
            hint=f"{skipped} other objects skipped" if skipped else None,
        )
    print_namespace_hint(
        (d.policy.namespace for d in docs if d.policy is not None),
        inventory,
        args.default_namespace,
    )
    progress.step(f"checking {len(docs):,} policies")
    report = lint_docs(
        docs, inventory, args.namespace, redundancy=not args.no_redundancy, kind_docs=kinds
    )
    progress.done()
    report.skipped = skipped
    if args.json:
        write_json_atomic(args.json, report_dict(report), args.force)
    if args.sarif:
        write_json_atomic(args.sarif, to_sarif(report.findings, base="."), args.force)
    sys.stdout.write(render_text(report))
    if args.fail_on != "never" and report.fails(args.fail_on):
        c = report.counts()
        raise GateFailed(
            f"lint: {c['error']} errors, {c['warning']} warnings (failing on {args.fail_on})"
        )
    return 0
