"""Scoring a policy set against simulator ground truth: the measures of ``netpol score``.

The command (``recommender.cli.score``) only wires arguments to :func:`score`; the demo
and ``bench/quality.py`` call :func:`score_policies` on policies already in memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import orjson

from recommender.errors import InputError
from recommender.model import Inventory, NetworkPolicy
from recommender.policy_io.policy_yaml import load_policies
from recommender.progress import Progress
from recommender.semantics import compile_policies
from recommender.semantics.reachability import workload_universe

if TYPE_CHECKING:  # pandas loads only when a command runs (start-up time)
    import pandas as pd


def load_truth(path: str) -> dict[str, Any]:
    """Read a simulator truth file, with a located error when it is not one."""
    try:
        with open(path, "rb") as fh:
            truth = orjson.loads(fh.read())
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except orjson.JSONDecodeError as exc:
        raise InputError(path, f"not JSON: {exc}") from None
    if not isinstance(truth, dict) or "legitimate_edges" not in truth:
        raise InputError(path, "not a simulator truth file (no legitimate_edges)")
    return truth


def score(
    policies_paths: list[str], truth_path: str, flows: str, inventory_paths: list[str]
) -> dict[str, Any]:
    """All measures for one policy set (the command's core, reused by demo and bench)."""
    from recommender.inventory.files import read_inventory

    truth = load_truth(truth_path)
    inventory = read_inventory(inventory_paths)
    policies = load_policies(policies_paths).policies
    result = score_policies(policies, truth, flows, inventory)
    result["inputs"] = {
        "policies": policies_paths,
        "truth": truth_path,
        "flows": flows,
        "inventory": inventory_paths,
    }
    return result


def score_policies(
    policies: list[NetworkPolicy],
    truth: dict[str, Any],
    flows: str,
    inventory: Inventory,
    batches: Iterable[pd.DataFrame] | None = None,
    reachability: bool = True,
) -> dict[str, Any]:
    """All measures for policies already in memory (used by bench/quality.py too).

    ``batches`` are the flow records of ``flows`` when the caller has read them
    already; ``reachability=False`` skips the workload-pair sweep (the
    unobserved-triples measure is then None).
    """
    from recommender.evaluate.score import Scorer, static_measures
    from recommender.observe.factory import get_engine
    from recommender.shadow.core import ShadowRun

    policy_set = compile_policies(policies, inventory)
    run = ShadowRun(policy_set, inventory)
    scorer = Scorer(truth, os.path.basename(flows))
    progress = Progress("score: records")
    for batch in batches if batches is not None else get_engine().read_flows([flows], inventory):
        scorer.add(batch, run.evaluate(batch))
        progress.update(len(batch))
    progress.done()
    result = scorer.result()
    result.update(
        static_measures(
            policies, policy_set, workload_universe(inventory), truth, inventory, reachability
        )
    )
    return result


def format_table(result: dict[str, Any]) -> str:
    """The measures as a short aligned table."""
    fd, blk = result["false_deny"], result["block"]
    over, comp = result["over_permissiveness"], result["compactness"]

    def pct(t: dict[str, Any]) -> str:
        return "n/a" if not t["total"] else f"{100 * t['denied'] / t['total']:.2f}%"

    rows = [
        (
            "false-deny, connections",
            f"{pct(fd['connections'])} "
            f"({fd['connections']['denied']:,}/{fd['connections']['total']:,})",
        ),
        (
            "false-deny, trained edges",
            f"{pct(fd['edges_trained'])} "
            f"({fd['edges_trained']['denied']}/{fd['edges_trained']['total']})",
        ),
        (
            "false-deny, fresh-only edges",
            f"{pct(fd['edges_fresh_only'])} "
            f"({fd['edges_fresh_only']['denied']}/{fd['edges_fresh_only']['total']})",
        ),
        ("block rate, illegitimate", f"{pct(blk)} ({blk['denied']:,}/{blk['total']:,})"),
        (
            "illegitimate edges allowed",
            f"{result['learned_attacks']['allowed']}/{result['learned_attacks']['edges']}",
        ),
        (
            "allowed, unobserved triples",
            f"{over['unobserved_allowed_triples'] or 0:,}"
            f" (+{over['dns_allowance_triples']:,} from the DNS allowance)",
        ),
        (
            "external addresses beyond observed",
            f"egress {over['external_addresses_beyond_observed']:,}, "
            f"ingress {over['ingress_external_addresses_beyond_legitimate']:,}",
        ),
        (
            "policies / rules",
            f"{comp['policies']} / {comp['rules']} for {comp['workloads']} workloads",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
