"""``tighten``: evidence + current policies -> a tighter set, its changes and its proof.

Steps: judge every observation against the current set; count hits of the
observations that count as use (allowed ones, plus widening candidates);
prune and narrow (:mod:`recommender.tighten.propose`); list widenings and,
only when accepted, add them (:mod:`recommender.tighten.widen`); then prove
the result before anyone writes it:

* every case the current set allows, the proposed set allows;
* every case the current set denies, the proposed set denies, except the
  observations of accepted widenings;
* over the finite universe of :mod:`recommender.diff` (inventory workloads x
  declared, policy-cut and observed ports, plus external probes), nothing
  becomes allowed unless widening was accepted.

A failed proof is a bug in tighten, never a property of the input: the
result carries the violations and the command refuses to write.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from recommender.diff import DiffResult, build_universe, diff_policies
from recommender.diff.core import Engine
from recommender.diff.kinds import PolicyKinds, diff_kinds
from recommender.errors import InputError
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics import PolicySet, compile_policies
from recommender.semantics.cnp import compile_all_kinds
from recommender.tighten.context import InventoryContext
from recommender.tighten.evidence import Decider, Judged, Observed, build_evidence, judge
from recommender.tighten.hits import HitTable, count_hits, rule_index
from recommender.tighten.holds import TightenHistory, find_holds
from recommender.tighten.propose import ProposeOptions, propose
from recommender.tighten.text import Change, Note
from recommender.tighten.widen import Widening, find_widenings, is_candidate, widen_policies


@dataclass(frozen=True)
class TightenOptions(ProposeOptions):
    """:class:`ProposeOptions` plus ``accept_widening`` and ``semantic_diff``."""

    accept_widening: bool = False
    semantic_diff: bool = True


@dataclass
class SelfCheck:
    """The guarantees, checked on the evidence (and the diff universe)."""

    allowed_kept: int = 0  # cases allowed before and after
    denied_kept: int = 0  # cases denied before and after
    widened: int = 0  # cases denied before, allowed by accepted widenings
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no guarantee is broken."""
        return not self.violations


@dataclass
class TightenResult:
    """Everything ``netpol tighten`` reports and writes."""

    current: list[NetworkPolicy]
    proposed: list[NetworkPolicy]
    changes: list[Change]
    notes: list[Note]
    widenings: list[Widening]
    hits: HitTable
    judged: list[Judged]
    check: SelfCheck
    options: TightenOptions
    diff: DiffResult | None = None
    #: The Cilium and ClusterNetworkPolicy objects enforced beside ``current`` (kept).
    beside: PolicyKinds = field(default_factory=PolicyKinds)

    @property
    def window(self) -> tuple[str | None, str | None]:
        """First and last time seen over the evidence."""
        firsts = [j.observed.first_seen for j in self.judged if j.observed.first_seen]
        lasts = [j.observed.last_seen for j in self.judged if j.observed.last_seen]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)

    def totals(self) -> dict[str, int]:
        """Observation and connection counts by current verdict."""
        out: dict[str, int] = {"observations": len(self.judged), "connections": 0}
        for j in self.judged:
            out["connections"] += j.observed.connections
            key = f"{j.verdict}_connections"
            out[key] = out.get(key, 0) + j.observed.connections
        out["widening_candidates"] = sum(1 for j in self.judged if is_candidate(j))
        return dict(sorted(out.items()))


def check_unique(policies: Sequence[NetworkPolicy]) -> None:
    """Two policies with one namespace/name cannot be written to one tree."""
    seen: dict[str, str | None] = {}
    for p in policies:
        if p.key in seen:
            raise InputError(
                p.source,
                f"policy {p.key} is defined twice (also in {seen[p.key] or 'another document'})",
            )
        seen[p.key] = p.source


def tighten(
    policies: Sequence[NetworkPolicy],
    observations: pd.DataFrame,
    inventory: Inventory,
    options: TightenOptions | None = None,
    history: TightenHistory | None = None,
    beside: PolicyKinds | None = None,
    dns_cache: Mapping[str, Sequence[str]] | None = None,
) -> TightenResult:
    """Propose a tighter policy set from the observations of a window.

    Parameters
    ----------
    policies
        The current set (``policy_types`` defaulted, as ``load_policies`` gives).
    observations
        ``OBSERVATION_COLUMNS`` rows over the window (from the engine or the store).
    inventory
        The cluster the flows are resolved against and selectors are exact in.
    options
        Budget, DNS and widening choices.
    history
        A longer history, lost events and the window end: unused rules whose
        absence proves nothing are kept (:mod:`recommender.tighten.holds`).
    beside
        CiliumNetworkPolicies and ClusterNetworkPolicies enforced together with
        ``policies`` (not changed here): every judgement, the proof and the
        semantic diff then use the engine of the whole mix
        (:func:`recommender.semantics.cnp.compile_all_kinds`), so a rule is
        used when it allowed a side of a flow the mix allows.
    dns_cache
        Address -> names answered in the window, for ``toFQDNs``/``domainNames``.

    Raises
    ------
    InputError
        No observations, or two policies with one namespace/name.
    """
    opts = options or TightenOptions()
    check_unique(policies)
    if observations.empty:
        # An empty window would make every rule "unused": refuse rather than prune all.
        raise InputError(
            None,
            "no observations in the window: nothing to tighten from",
            hint="check the flow files, or the store and --since",
        )
    current = list(policies)
    mix = beside or PolicyKinds()
    ctx = InventoryContext.build(inventory)
    evidence = build_evidence(observations, inventory)
    compiled = compile_policies(current, inventory)
    engine = _engine(current, mix, inventory, dns_cache) if mix.other_kinds else compiled
    judged = judge(evidence, engine)
    uses = [j.observed.index for j in judged if j.any_allowed or is_candidate(j)]
    hits = count_hits(judged, compiled, uses)
    holds = _holds(history, compiled, engine, inventory, evidence, hits)
    proposal = propose(current, hits, ctx, opts, holds)
    widenings = find_widenings(judged, ctx)
    proposed = proposal.policies
    if opts.accept_widening:
        proposed = widen_policies(proposed, widenings)
    accepted = (
        {w.judged.observed.index for w in widenings if w.possible}
        if opts.accept_widening
        else set()
    )
    after = _engine(proposed, mix, inventory, dns_cache) if mix.other_kinds else None
    check = _verify(evidence, judged, proposed, inventory, accepted, after)
    result = TightenResult(
        current,
        proposed,
        proposal.changes,
        proposal.notes,
        widenings,
        hits,
        judged,
        check,
        opts,
        beside=mix,
    )
    if opts.semantic_diff:
        compiled_pair = (engine, after) if after is not None else None
        result.diff = _diff(result, inventory, compiled_pair)
    return result


def _engine(
    policies: Sequence[NetworkPolicy],
    mix: PolicyKinds,
    inventory: Inventory,
    dns_cache: Mapping[str, Sequence[str]] | None,
) -> Engine:
    """The engine of ``policies`` with the other kinds of the mix beside them."""
    return compile_all_kinds(policies, mix.cilium, mix.cluster, inventory, dns_cache)


def _holds(
    history: TightenHistory | None,
    compiled: PolicySet,
    engine: Decider,
    inventory: Inventory,
    evidence: Sequence[Observed],
    hits: HitTable,
) -> dict[str, str]:
    if history is None:
        return {}
    firsts = [o.first_seen for o in evidence if o.first_seen]
    lasts = [o.last_seen for o in evidence if o.last_seen]
    window = (min(firsts, default=None), max(lasts, default=None))
    unused = [rid for rid in rule_index(compiled) if hits.rule(rid) is None]
    return find_holds(history, engine, inventory, window, unused)


def _verify(
    evidence: Sequence[Observed],
    judged: Sequence[Judged],
    proposed: Sequence[NetworkPolicy],
    inventory: Inventory,
    accepted: set[int],
    engine: Decider | None = None,
) -> SelfCheck:
    after = judge(evidence, engine or compile_policies(proposed, inventory))
    return compare_judgements(judged, after, accepted)


def compare_judgements(
    judged: Sequence[Judged], after: Sequence[Judged], accepted: set[int]
) -> SelfCheck:
    """The guarantees, case by case: ``judged`` (before) against ``after``, the same
    observations judged by the proposed set; ``accepted`` are the observation indexes
    of accepted widenings."""
    check = SelfCheck()
    # A widening admits its edge, so another observation of the same edge (a dropped
    # attempt, which is never evidence by itself) is allowed with it: that is the
    # accepted widening, not a violation.
    widened_edges = {
        (b.observed.src, b.observed.dst, b.observed.protocol, b.observed.port)
        for b in judged
        if b.observed.index in accepted
    }
    for before, now in zip(judged, after, strict=True):
        o = before.observed
        for a, b in zip(before.decisions, now.decisions, strict=True):
            if a.verdict == "allowed" and b.verdict != "allowed":
                check.violations.append(
                    f"{o.src} -> {o.dst} {o.protocol}/{o.port}: allowed before, {b.verdict} after"
                )
            elif a.verdict == "denied" and b.verdict == "allowed":
                if o.index in accepted or (o.src, o.dst, o.protocol, o.port) in widened_edges:
                    check.widened += 1
                else:
                    check.violations.append(
                        f"{o.src} -> {o.dst} {o.protocol}/{o.port}: "
                        "denied before, allowed after without widening"
                    )
            elif a.verdict == "allowed":
                check.allowed_kept += 1
            elif a.verdict == "denied":
                check.denied_kept += 1
    return check


def _diff(
    result: TightenResult, inventory: Inventory, compiled: tuple[Engine, Engine] | None = None
) -> DiffResult:
    """Semantic diff over the inventory's workloads and the policies' region probes.

    No observed ports or addresses are added: the diff universe already cuts
    the port and address spaces at every boundary of both sets' port entries
    and ipBlocks, so one probe per region decides numeric ports and ipBlocks
    exactly, and extra probes (hundreds of public clients) only cost time.
    With other kinds beside (``compiled`` is then the mix's engines before and
    after), the diff is :func:`recommender.diff.kinds.diff_kinds` over the mix.
    """
    if compiled is not None:
        mix = result.beside
        old = PolicyKinds(tuple(result.current), mix.cilium, mix.cluster)
        new = PolicyKinds(tuple(result.proposed), mix.cilium, mix.cluster)
        diff = diff_kinds(old, new, inventory, compiled=compiled)
    else:
        universe = build_universe(result.current, result.proposed, inventory)
        diff = diff_policies(result.current, result.proposed, inventory, universe=universe)
    allowed = [c for c in diff.changes if c.change == "allowed"]
    if allowed and not result.options.accept_widening:
        first = allowed[0]
        result.check.violations.append(
            f"semantic diff: {len(allowed)} reachabilities newly allowed without widening, "
            f"e.g. {first.src} -> {first.dst} {first.protocol}/{first.port}"
        )
    return diff
