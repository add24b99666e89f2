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

* a ``toFQDNs`` rule whose names no DNS answer of the window resolves: the
  evaluator matches a ``toFQDNs`` peer only through the answers the DNS proxy saw
  ("Cilium intercepts DNS responses per-Endpoint using a DNS Proxy"), so without
  them "no hit" is not evidence of "no use" (note ``fqdn-no-dns-evidence``).

A section whose every rule goes becomes ``[{}]`` so the endpoints stay in default
deny. Only whole rules are pruned; peers and ports inside a used rule are kept as
written (narrowing is v1 only). Fields the evaluator refuses never get here: the
policy fails to load with the field named (exit 2), so nothing is pruned on a
guess. The proposal is proved like v1's: every observed case allowed before is
allowed after and none denied before is allowed after
(:func:`recommender.tighten.kinds.tighten_kinds` adds the semantic diff of the
whole mix).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.model import Inventory, NetworkPolicy
from recommender.policy_io.kinds.cilium import prune_cilium_rules
from recommender.semantics.cilium import CiliumPolicy, parse_cilium_policy
from recommender.semantics.cilium_rules import CiliumRule, fqdn_matches
from recommender.semantics.cnp import compile_all_kinds
from recommender.semantics.cnp_rules import ClusterPolicy
from recommender.tighten.core import SelfCheck, compare_judgements
from recommender.tighten.evidence import Decider, Judged, Observed, build_evidence, judge
from recommender.tighten.holds import TightenHistory, find_holds
from recommender.tighten.text import Change, Note
from recommender.tighten.widen import is_candidate

ALLOW_SECTIONS: tuple[str, ...] = ("ingress", "egress")
#: Prefix of the per-policy totals in :attr:`CiliumTightening.hits` (no rule id starts so).
POLICY_MARK = "policy:"


@dataclass
class CiliumTightening:
    """The proposal for the CiliumNetworkPolicies of the set."""

    objects: list[dict[str, Any]]  # proposed objects, one per current object, in order
    proposed: list[CiliumPolicy] = field(default_factory=list)  # ``objects`` parsed
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: rule id -> connections, and ``policy:<ns>/<name>`` -> connections (each flow once)
    hits: dict[str, int] = field(default_factory=dict)
    check: SelfCheck = field(default_factory=SelfCheck)


def observed_answers(observations: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Address -> the DNS names the window recorded for it (``dst_names``).

    That is what Cilium's DNS proxy would have learned from the lookups of the
    window, so ``toFQDNs`` rules are judged by it.
    """
    out: dict[str, set[str]] = {}
    if observations.empty or "dst_names" not in observations.columns:
        return {}
    for ip, names in zip(observations["dst_ip"], observations["dst_names"], strict=True):
        if not isinstance(ip, str) or names is None or not len(names):
            continue
        out.setdefault(ip, set()).update(str(n).lower().rstrip(".") for n in names)
    return {ip: tuple(sorted(n)) for ip, n in sorted(out.items())}


def tighten_cilium(
    v1: Sequence[NetworkPolicy],
    cilium: Sequence[CiliumPolicy],
    observations: pd.DataFrame,
    inventory: Inventory,
    prune_dns: bool = False,
    history: TightenHistory | None = None,
    cluster: Sequence[ClusterPolicy] = (),
    dns_cache: Mapping[str, Sequence[str]] | None = None,
) -> CiliumTightening:
    """Prune the unused allow rules of ``cilium``; ``v1`` and ``cluster`` are enforced beside.

    ``dns_cache`` (address -> names) defaults to :func:`observed_answers` of the
    observations. The proposal's :attr:`CiliumTightening.check` compares the mix
    before and after on every observed case.
    """
    dns = dict(observed_answers(observations) if dns_cache is None else dns_cache)
    current = compile_all_kinds(v1, cilium, cluster, inventory, dns)
    evidence = build_evidence(observations, inventory)
    judged = judge(evidence, current)
    hits = _hits(judged)
    out = CiliumTightening([])
    candidates: list[tuple[CiliumPolicy, CiliumRule]] = []
    for p in cilium:
        for section in ALLOW_SECTIONS:
            for rule in p.sections[section] or ():
                kept = _kept(p, rule, hits, prune_dns, dns)
                if isinstance(kept, Note):
                    out.notes.append(kept)
                elif not kept:
                    candidates.append((p, rule))
    holds = _holds(history, current, inventory, evidence, [r.rule_id for _, r in candidates])
    removed: dict[str, set[str]] = {}  # policy key -> rule ids
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
    out.proposed = [
        q for obj in out.objects for q in parse_cilium_policy(obj, _source(obj, cilium))
    ]
    after = compile_all_kinds(v1, out.proposed, cluster, inventory, dns)
    out.check = compare_judgements(judged, judge(evidence, after), set())  # never widens
    return out


def _hits(judged: Sequence[Judged]) -> dict[str, int]:
    """Connections per rule id (and per policy key) over the observations that count as use.

    The same use test as v1 (:mod:`recommender.tighten.hits`): the mix allows a
    case of the observation, or it is a widening candidate.
    """
    out: dict[str, int] = {}
    for j in judged:
        if not (j.any_allowed or is_candidate(j)):
            continue
        ids = {r for d in j.decisions for r in (*d.egress_rules, *d.ingress_rules)}
        for key in {*ids, *(POLICY_MARK + rid.split("#", 1)[0] for rid in ids)}:
            out[key] = out.get(key, 0) + j.observed.connections
    return out


def _kept(
    p: CiliumPolicy,
    rule: CiliumRule,
    hits: dict[str, int],
    prune_dns: bool,
    dns: Mapping[str, Sequence[str]],
) -> Note | bool:
    """False: a prune candidate; True: kept (used, or the default-deny marker); a Note: kept."""
    if rule.rule_id in hits or _is_empty(rule):
        return True  # used, or the empty rule that allows nothing and keeps default deny
    if not prune_dns and _is_dns(rule):
        return Note(
            "unused-dns", p.key, rule.rule_id, "DNS rule unused in the window: kept (--prune-dns)"
        )
    if rule.fqdns and not _resolved(rule.fqdns, dns):
        return Note(
            "fqdn-no-dns-evidence",
            p.key,
            rule.rule_id,
            f"toFQDNs {', '.join(rule.fqdns)}: no DNS answer in the window names it, so the "
            "absence of hits proves nothing (Cilium matches toFQDNs through the DNS proxy's "
            "answers): kept",
        )
    return False


def _resolved(patterns: Sequence[str], dns: Mapping[str, Sequence[str]]) -> bool:
    """True when some answer of the window names a pattern of a ``toFQDNs`` rule."""
    return any(fqdn_matches(pat, n) for names in dns.values() for n in names for pat in patterns)


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
    current: Decider,
    inventory: Inventory,
    evidence: Sequence[Observed],
    unused: Sequence[str],
) -> dict[str, str]:
    if history is None or not unused:
        return {}
    firsts = [o.first_seen for o in evidence if o.first_seen]
    lasts = [o.last_seen for o in evidence if o.last_seen]
    window = (min(firsts, default=None), max(lasts, default=None))
    return find_holds(history, current, inventory, window, unused)


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
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", p.namespace)  # --default-namespace: written explicitly
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
    """The rule as compact JSON with sorted keys (stable across runs)."""
    return json.dumps(rule_source(p, rule), sort_keys=True, separators=(",", ":"))


def _spec_of(p: CiliumPolicy) -> dict[str, Any]:
    raw = dict(p.raw)
    if raw.get("spec") is not None:
        return dict(raw["spec"])
    i = int(p.name.rsplit("[", 1)[1].rstrip("]"))
    return dict(raw["specs"][i])


def rule_source(p: CiliumPolicy, rule: CiliumRule) -> dict[str, Any]:
    """The rule as written in the policy (the dict of its section at its index)."""
    section, index = rule.rule_id.rsplit("#", 1)[1].rstrip("]").split("[")
    raw = _spec_of(p).get(section) or []
    item = raw[int(index)] if int(index) < len(raw) else {}
    return dict(item) if isinstance(item, Mapping) else {}


def cilium_hits_table(
    cilium: Sequence[CiliumPolicy], hits: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Per CiliumNetworkPolicy and allow rule: connections in the window, and the rule text."""
    out = []
    for p in cilium:
        rules = [
            {
                "rule": rule.rule_id,
                "connections": hits.get(rule.rule_id, 0),
                "text": _rule_text(p, rule),
            }
            for section in ALLOW_SECTIONS
            for rule in p.sections[section] or ()
        ]
        total = hits.get(POLICY_MARK + p.key, 0)
        out.append(
            {"policy": p.key, "kind": "CiliumNetworkPolicy", "connections": total, "rules": rules}
        )
    return out
