"""``netpol inventory``: snapshot a live cluster into one kubectl-style List JSON file."""

from __future__ import annotations

import argparse
import sys

from recommender.cli._args import add_force_argument
from recommender.inventory.files import write_inventory_json
from recommender.policy_io.atomic import check_writable
from recommender.progress import Progress

NAME = "inventory"
HELP = (
    "snapshot namespaces, nodes, pods, services, endpointslices and networkpolicies "
    "from a live cluster (read-only) into a List JSON file"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol inventory``."""
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="output file (kubectl-style List JSON)"
    )
    parser.add_argument(
        "--kubeconfig",
        metavar="PATH",
        help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)",
    )
    parser.add_argument("--context", metavar="NAME", help="kubeconfig context to use")
    parser.add_argument(
        "--in-cluster",
        action="store_true",
        help="use the pod's service account (running inside the cluster)",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="API server URL without authentication, e.g. from `kubectl proxy`",
    )
    add_force_argument(parser, "replace an existing output file")


def run(args: argparse.Namespace) -> int:
    """List the cluster, write the snapshot, print a one-line summary to stderr."""
    # The kubernetes client takes a second to import: only when listing a cluster.
    from recommender.inventory.kube_api import fetch_inventory

    check_writable(args.out, args.force)  # refuse before talking to the cluster
    progress = Progress("inventory: objects listed")
    inventory, items = fetch_inventory(
        kubeconfig=args.kubeconfig,
        context=args.context,
        in_cluster=args.in_cluster,
        host=args.server,
        on_list=lambda what, n: progress.update(n, what),
    )
    progress.done()
    path = write_inventory_json(items, args.out, force=args.force)
    print(
        f"wrote {path}: {len(inventory.namespaces)} namespaces, {len(inventory.nodes)} nodes, "
        f"{len(inventory.pods)} pods, {len(inventory.services)} services, "
        f"{len(inventory.endpoint_slices)} endpointslices, "
        f"{len(inventory.network_policies)} networkpolicies",
        file=sys.stderr,
    )
    return 0
