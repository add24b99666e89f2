"""``tighten`` on a mix of kinds: NetworkPolicy, CiliumNetworkPolicy and ClusterNetworkPolicy.

Every object of the input comes out; what is not tightened is written through
unchanged with a note naming it. The steps, each judged by the engine of the
whole mix (:func:`recommender.semantics.cnp.compile_all_kinds`, the one
``shadow`` and ``diff`` use) with the DNS answers of the window:

1. the NetworkPolicies, by :func:`recommender.tighten.core.tighten`, with the
   Cilium and ClusterNetworkPolicy objects enforced beside them;
2. the CiliumNetworkPolicies, by :func:`recommender.tighten.cilium.tighten_cilium`,
   with the proposed NetworkPolicies beside them (unused allow rules pruned);
3. ClusterNetworkPolicies are written through unchanged (note ``not-tightened``):
   a cluster-wide guardrail's rules belong to the platform team, and an Admin-tier
   rule decides before every namespace's own policies ("Policy tiers are evaluated
   in the following order: Admin tier, NetworkPolicy tier, Baseline tier. If Admin
   tier has made a final decision (Accept or Deny) on a connection, then no further
   evaluation is done", ``ClusterNetworkPolicySpec.Tier``), so removing an Accept or
   a Deny changes the verdicts of namespaces whose owners did not ask for it.

The whole change is then proved once more, from the input mix to the proposed
mix: every observed case allowed before is allowed after, none denied before is
allowed after (unless widening was accepted), and the semantic diff
(:func:`recommender.diff.kinds.diff_kinds`) finds nothing newly allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from recommender.diff.kinds import PolicyKinds, diff_kinds
from recommender.errors import InputError
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics.cilium import CiliumPolicy
from recommender.semantics.cnp import compile_all_kinds
from recommender.semantics.cnp_rules import ClusterPolicy
from recommender.tighten.cilium import CiliumTightening, observed_answers, tighten_cilium
from recommender.tighten.core import TightenOptions, TightenResult, compare_judgements, tighten
from recommender.tighten.evidence import judge
from recommender.tighten.holds import TightenHistory
from recommender.tighten.text import Note

#: Why a ClusterNetworkPolicy is written through unchanged.
CLUSTER_NOT_TIGHTENED = (
    "written through unchanged, not tightened: a cluster-wide guardrail's rules are owned "
    "by the platform team, and its Admin-tier Accept/Deny rules decide before every "
    "selected namespace's NetworkPolicies (Pass hands over to them), so pruning one "
    "changes other namespaces' verdicts; it is enforced beside the other kinds in every "
    "judgement and in the semantic diff"
)


@dataclass
class KindsTightening:
    """The proposal for a mix: the v1 result (changes, notes, proof and diff of the whole mix)."""

    result: TightenResult
    cilium: CiliumTightening | None
    cluster: list[ClusterPolicy]

    @property
    def cilium_objects(self) -> list[dict[str, Any]]:
        """The proposed CiliumNetworkPolicy objects (one per input object, in input order)."""
        return [] if self.cilium is None else list(self.cilium.objects)


def tighten_kinds(
    policies: Sequence[NetworkPolicy],
    cilium: Sequence[CiliumPolicy],
    cluster: Sequence[ClusterPolicy],
    observations: pd.DataFrame,
    inventory: Inventory,
    options: TightenOptions | None = None,
    history: TightenHistory | None = None,
) -> KindsTightening:
    """Tighten every kind of the mix (see the module docstring); nothing is written here.

    With NetworkPolicies only this is :func:`recommender.tighten.core.tighten`.
    """
    opts = options or TightenOptions()
    if not cilium and not cluster:
        return KindsTightening(tighten(policies, observations, inventory, opts, history), None, [])
    _refuse_shared_names(policies, cilium)
    dns = observed_answers(observations)
    beside = PolicyKinds((), tuple(cilium), tuple(cluster))
    v1 = tighten(
        policies,
        observations,
        inventory,
        replace(opts, semantic_diff=False),
        history,
        beside=beside,
        dns_cache=dns,
    )
    v1.options = opts  # the diff of the whole mix is computed below, once
    cil = None
    if cilium:
        cil = tighten_cilium(
            v1.proposed, cilium, observations, inventory, opts.prune_dns, history, cluster, dns
        )
        v1.changes += cil.changes
        v1.notes += cil.notes
    v1.notes += [Note("not-tightened", c.key, None, CLUSTER_NOT_TIGHTENED) for c in cluster]
    proposed = tuple(cil.proposed) if cil is not None else tuple(cilium)
    old = PolicyKinds(tuple(policies), tuple(cilium), tuple(cluster))
    new = PolicyKinds(tuple(v1.proposed), proposed, tuple(cluster))
    _prove(v1, old, new, inventory, dns, cil)
    return KindsTightening(v1, cil, list(cluster))


def _refuse_shared_names(policies: Sequence[NetworkPolicy], cilium: Sequence[CiliumPolicy]) -> None:
    """A namespace/name of both kinds gives both the same rule ids: hits would be guessed."""
    shared = sorted({p.key for p in policies} & {c.key for c in cilium})
    if shared:
        first = next(c for c in cilium if c.key == shared[0])
        raise InputError(
            first.source,
            f"{shared[0]} is both a NetworkPolicy and a CiliumNetworkPolicy: their rule ids "
            f"({shared[0]}#egress[0], ...) would be ambiguous in the hit counts",
            hint="rename one of them, or tighten the two kinds in separate runs",
        )


def _prove(
    v1: TightenResult,
    old: PolicyKinds,
    new: PolicyKinds,
    inventory: Inventory,
    dns: dict[str, tuple[str, ...]],
    cil: CiliumTightening | None,
) -> None:
    """Replace ``v1``'s check and diff by those of the whole mix, before -> after."""
    before = compile_all_kinds(old.policies, old.cilium, old.cluster, inventory, dns)
    after = compile_all_kinds(new.policies, new.cilium, new.cluster, inventory, dns)
    accepted = (
        {w.judged.observed.index for w in v1.widenings if w.possible}
        if v1.options.accept_widening
        else set()
    )
    now = judge([j.observed for j in v1.judged], after)
    check = compare_judgements(v1.judged, now, accepted)
    steps = [*v1.check.violations, *(cil.check.violations if cil is not None else ())]
    check.violations = sorted(set(steps) | set(check.violations))
    v1.check = check
    if v1.options.semantic_diff:
        v1.diff = diff_kinds(old, new, inventory, compiled=(before, after))
        allowed = [c for c in v1.diff.changes if c.change == "allowed"]
        if allowed and not v1.options.accept_widening:
            first = allowed[0]
            v1.check.violations.append(
                f"semantic diff: {len(allowed)} reachabilities newly allowed without widening, "
                f"e.g. {first.src} -> {first.dst} {first.protocol}/{first.port}"
            )
