"""``tighten`` for CiliumNetworkPolicies: prune the allow rules no observed flow used.

The same evidence as v1 tighten: observations judged by the enforced set (the
NetworkPolicies and CiliumNetworkPolicies together, ``semantics.cilium``); a rule
is used when it is one of the rules that allowed a side of an observation that
the set allows, or of a widening candidate (:mod:`recommender.tighten.hits`).
Unused rules whose absence proves nothing are kept (``evidence-hold``,
:mod:`recommender.tighten.holds`). What is never pruned:

* deny sections (``ingressDeny``/``egressDeny``): removing a deny opens traffic;
* the empty rule ``{}``: it allows nothing and is what puts the endpoints into
  default deny ("If omitted or empty, this rule does not apply at ingress");
* DNS rules (port 53, or a ``rules.dns`` section the DNS proxy needs for
  ``toFQDNs``) unless ``--prune-dns``.

A section whose every rule goes becomes ``[{}]`` so the endpoints stay in default
deny. Only whole rules are pruned; peers and ports inside a used rule are kept as
written (narrowing is v1 only). The proposal is proved like v1's: every observed
case allowed before is allowed after, none denied before is allowed after, and the
semantic diff (``diff.kinds``) finds nothing newly allowed.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.diff import DiffResult
from recommender.diff.kinds import PolicyKinds, diff_kinds
from recommender.model import Inventory, NetworkPolicy
from recommender.policy_io.kinds.cilium import prune_cilium_rules
from recommender.semantics.cilium import CiliumPolicy, CiliumPolicySet, parse_cilium_policy
from recommender.semantics.cilium_rules import CiliumRule
from recommender.tighten.core import SelfCheck
from recommender.tighten.evidence import Judged, Observed, build_evidence, judge
from recommender.tighten.holds import TightenHistory, find_holds
from recommender.tighten.text import Change, Note
from recommender.tighten.widen import is_candidate

ALLOW_SECTIONS: tuple[str, ...] = ("ingress", "egress")


@dataclass
class CiliumTightening:
    """The proposal for the CiliumNetworkPolicies of the set."""

    objects: list[dict[str, Any]]  # proposed objects, in current order
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    hits: dict[str, int] = field(default_factory=dict)  # rule id -> connections
    check: SelfCheck = field(default_factory=SelfCheck)
    diff: DiffResult | None = None


def tighten_cilium(
    v1: Sequence[NetworkPolicy],
    cilium: Sequence[CiliumPolicy],
    observations: pd.DataFrame,
    inventory: Inventory,
    prune_dns: bool = False,
    history: TightenHistory | None = None,
) -> CiliumTightening:
    """Prune the unused allow rules of ``cilium`` (``v1`` is enforced beside them)."""
    current = CiliumPolicySet(v1, cilium, inventory)
    evidence = build_evidence(observations, inventory)
    judged = judge(evidence, current)  # type: ignore[arg-type]
    hits = _hits(judged)
    out = CiliumTightening([])
    removed: dict[str, set[str]] = {}  # policy key -> rule ids
    candidates = []
    for p in cilium:
        for section in ALLOW_SECTIONS:
            for rule in p.sections[section] or ():
                kept = _kept(p, rule, hits, prune_dns)
                if isinstance(kept, Note):
                    out.notes.append(kept)
                elif not kept:
                    candidates.append((p, rule))
    holds = _holds(history, current, inventory, evidence, [r.rule_id for _, r in candidates])
    for p, rule in candidates:
        if rule.rule_id in holds:
            out.notes.append(Note("evidence-hold", p.key, rule.rule_id, holds[rule.rule_id]))
            continue
        removed.setdefault(p.key, set()).add(rule.rule_id)
        out.changes.append(
            Change("prune-rule", p.key, rule.rule_id, _rule_text(p, rule), "(removed)", "0 hits")
        )
    out.hits = dict(sorted(hits.items()))
    out.objects, emptied = _rewrite(cilium, removed)
    for key, section in emptied:
        out.notes.append(
            Note(
                "keeps-isolation",
                key,
                None,
                f"no {section} rule was used in the window: the rules are removed and "
                f"{section} becomes [{{}}], so the selected pods stay in default deny",
            )
        )
    proposed = [q for obj in out.objects for q in parse_cilium_policy(obj, _source(obj, cilium))]
    out.check = _verify(evidence, judged, CiliumPolicySet(v1, proposed, inventory))
    old, new = PolicyKinds(tuple(v1), tuple(cilium)), PolicyKinds(tuple(v1), tuple(proposed))
    out.diff = diff_kinds(old, new, inventory)
    allowed = [c for c in out.diff.changes if c.change == "allowed"]
    if allowed:
        first = allowed[0]
        out.check.violations.append(
            f"semantic diff: {len(allowed)} reachabilities newly allowed, e.g. "
            f"{first.src} -> {first.dst} {first.protocol}/{first.port}"
        )
    return out


def _hits(judged: Sequence[Judged]) -> dict[str, int]:
    """Connections per rule id over the observations that count as use."""
    out: dict[str, int] = {}
    for j in judged:
        if not (j.any_allowed or is_candidate(j)):
            continue
        ids = {r for d in j.decisions for r in (*d.egress_rules, *d.ingress_rules)}
        for rid in ids:
            out[rid] = out.get(rid, 0) + j.observed.connections
    return out


def _kept(p: CiliumPolicy, rule: CiliumRule, hits: dict[str, int], prune_dns: bool) -> Note | bool:
    """False: a prune candidate; True: kept (used, or the default-deny marker); a Note: kept."""
    if rule.rule_id in hits or _is_empty(rule):
        return True  # used, or the empty rule that allows nothing and keeps default deny
    if not prune_dns and _is_dns(rule):
        return Note(
            "unused-dns", p.key, rule.rule_id, "DNS rule unused in the window: kept (--prune-dns)"
        )
    return False


def _is_empty(rule: CiliumRule) -> bool:
    return (
        not rule.selectors
        and not rule.entities
        and not rule.networks
        and not rule.fqdns
        and rule.ports is None
    )


def _is_dns(rule: CiliumRule) -> bool:
    if rule.has_dns_rule:
        return True  # toFQDNs needs it even when no lookup was seen
    ports = rule.ports or ()
    return bool(ports) and all(p.first == 53 and p.last in (None, 53) for p in ports)


def _holds(
    history: TightenHistory | None,
    current: CiliumPolicySet,
    inventory: Inventory,
    evidence: Sequence[Observed],
    unused: Sequence[str],
) -> dict[str, str]:
    if history is None or not unused:
        return {}
    firsts = [o.first_seen for o in evidence if o.first_seen]
    lasts = [o.last_seen for o in evidence if o.last_seen]
    window = (min(firsts, default=None), max(lasts, default=None))
    return find_holds(history, current, inventory, window, unused)  # type: ignore[arg-type]


def _rewrite(
    cilium: Sequence[CiliumPolicy], removed: dict[str, set[str]]
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """The proposed objects (one per current object, in order) and emptied sections."""
    objects: list[dict[str, Any]] = []
    emptied: list[tuple[str, str]] = []
    done: set[int] = set()
    for p in cilium:
        if id(p.raw) in done:
            continue
        done.add(id(p.raw))
        parts = [q for q in cilium if q.raw is p.raw]
        drop = {
            (i, section, index)
            for i, q in enumerate(parts)
            for section in ALLOW_SECTIONS
            for index, rule in enumerate(q.sections[section] or ())
            if rule.rule_id in removed.get(q.key, set())
        }
        obj, gone = prune_cilium_rules(copy.deepcopy(dict(p.raw)), drop)
        objects.append(obj)
        emptied += [(parts[i].key, section) for i, section in gone]
    return objects, emptied


def _source(obj: dict[str, Any], cilium: Sequence[CiliumPolicy]) -> str:
    meta = obj.get("metadata") or {}
    for p in cilium:
        m = p.raw.get("metadata") or {}
        if m.get("name") == meta.get("name") and m.get("namespace") == meta.get("namespace"):
            return p.source or "<proposed>"
    return "<proposed>"


def _rule_text(p: CiliumPolicy, rule: CiliumRule) -> str:
    section, index = rule.rule_id.rsplit("#", 1)[1].rstrip("]").split("[")
    raw = _spec_of(p).get(section) or []
    return str(raw[int(index)]) if int(index) < len(raw) else rule.rule_id


def _spec_of(p: CiliumPolicy) -> dict[str, Any]:
    raw = dict(p.raw)
    if raw.get("spec") is not None:
        return dict(raw["spec"])
    i = int(p.name.rsplit("[", 1)[1].rstrip("]"))
    return dict(raw["specs"][i])


def _verify(
    evidence: Sequence[Observed], judged: Sequence[Judged], proposed: CiliumPolicySet
) -> SelfCheck:
    after = judge(evidence, proposed)  # type: ignore[arg-type]
    check = SelfCheck()
    for before, now in zip(judged, after, strict=True):
        o = before.observed
        for a, b in zip(before.decisions, now.decisions, strict=True):
            if a.verdict == "allowed" and b.verdict != "allowed":
                check.violations.append(
                    f"{o.src} -> {o.dst} {o.protocol}/{o.port}: allowed before, {b.verdict} after"
                )
            elif a.verdict == "denied" and b.verdict == "allowed":
                check.violations.append(
                    f"{o.src} -> {o.dst} {o.protocol}/{o.port}: denied before, allowed after"
                )
            elif a.verdict == "allowed":
                check.allowed_kept += 1
            elif a.verdict == "denied":
                check.denied_kept += 1
    return check
