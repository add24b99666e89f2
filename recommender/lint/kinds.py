"""Lint checks of CiliumNetworkPolicy and ClusterNetworkPolicy objects (NPL050-NPL059).

The rule-limit and ingress-peer checks read the raw object, so an object the API
server (and the evaluator) would refuse is still reported at its line; the other
checks judge the parsed object against the inventory with the semantics engine.
An object that cannot be parsed for another reason gets a note (NPL059) with the
reason: nothing is left out without a word.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import PolicyError
from recommender.findings import LintFinding, finding
from recommender.policy_io.strict_yaml import locate
from recommender.semantics import PolicySet
from recommender.semantics.cilium import (
    FQDN_EVIDENCE,
    CiliumPolicy,
    CiliumPolicySet,
    is_cilium_policy,
    parse_cilium_policy,
)
from recommender.semantics.cnp_rules import (
    KIND as CNP_KIND,
)
from recommender.semantics.cnp_rules import (
    MAX_RULES,
    ClusterPolicy,
    load_cluster_policy,
)
from recommender.semantics.reachability import WorkloadRep
from recommender.semantics.validate import parse_cidr

CILIUM_KIND = "CiliumNetworkPolicy"
#: Entities that admit every address outside the cluster.
WORLD_ENTITIES = frozenset({"world", "world-ipv4", "world-ipv6", "all"})
#: A block this narrow (or narrower) is one a CIDR rule names without admitting much.
NARROW_PREFIX = {4: 24, 6: 64}


@dataclass(frozen=True)
class KindDoc:
    """One CiliumNetworkPolicy or ClusterNetworkPolicy object as read, with its YAML node."""

    file: str
    doc: int
    prefix: str  # "items[3]." inside a List, else ""
    raw: Any
    node: Any = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        """``CiliumNetworkPolicy`` or ``ClusterNetworkPolicy``."""
        return CILIUM_KIND if is_cilium_policy(self.raw) else CNP_KIND

    @property
    def name(self) -> str:
        """``namespace/name`` (Cilium) or ``ClusterNetworkPolicy/name``."""
        meta = self.raw.get("metadata") if isinstance(self.raw, Mapping) else None
        meta = meta if isinstance(meta, Mapping) else {}
        if self.kind == CNP_KIND:
            return f"{CNP_KIND}/{meta.get('name') or '?'}"
        return f"{meta.get('namespace') or '?'}/{meta.get('name') or '?'}"

    def line(self, path: str = "") -> int | None:
        """1-based line of a field path inside the object (or of the object)."""
        return locate(self.node, self.prefix + path if path else self.prefix.rstrip("."))

    def at(self, rule_id: str, message: str, path: str = "") -> LintFinding:
        """A finding located at ``path`` of this object."""
        return finding(
            rule_id,
            message,
            file=self.file,
            line=self.line(path),
            policy=self.name,
            path=path or None,
        )


@dataclass
class ParsedKinds:
    """The objects that parsed, with the documents they came from."""

    cilium: list[tuple[KindDoc, CiliumPolicy]] = field(default_factory=list)
    cluster: list[tuple[KindDoc, ClusterPolicy]] = field(default_factory=list)


def parse_kind_docs(
    docs: Sequence[KindDoc], default_namespace: str | None = None
) -> tuple[ParsedKinds, list[LintFinding]]:
    """Parse every object; refused ones give findings (raw checks or an NPL059 note)."""
    parsed = ParsedKinds()
    findings: list[LintFinding] = []
    for d in docs:
        raw_hits = list(_cnp_raw(d)) if d.kind == CNP_KIND else []
        findings += raw_hits
        try:
            if d.kind == CNP_KIND:
                parsed.cluster.append((d, load_cluster_policy(d.raw, d.file, d.doc)))
            else:
                for p in parse_cilium_policy(d.raw, d.file, default_namespace, d.doc):
                    parsed.cilium.append((d, p))
        except PolicyError as exc:
            if not raw_hits:  # the raw checks already said why the API refuses it
                findings.append(
                    d.at(
                        "NPL059",
                        f"{d.kind} not checked: {exc.field}: {exc.reason}; shadow, diff "
                        "and tighten refuse it too",
                        exc.field if exc.field and not exc.field.startswith("<") else "",
                    )
                )
    return parsed, findings


# ---------------------------------------------------------------------------
# ClusterNetworkPolicy, raw: the API's own limits
# ---------------------------------------------------------------------------


def _cnp_raw(d: KindDoc) -> Iterator[LintFinding]:
    spec = d.raw.get("spec") if isinstance(d.raw, Mapping) else None
    if not isinstance(spec, Mapping):
        return
    for direction in ("ingress", "egress"):
        rules = spec.get(direction)
        if isinstance(rules, list) and len(rules) > MAX_RULES:
            # ClusterNetworkPolicySpec: "A maximum of 25 rules is allowed in this block."
            yield d.at(
                "NPL052",
                f"{len(rules)} {direction} rules: the API allows at most {MAX_RULES} "
                '("A maximum of 25 rules is allowed in this block"); split the policy '
                "or merge rules",
                f"spec.{direction}",
            )
    for i, rule in enumerate(spec.get("ingress") or []):
        peers = rule.get("from") if isinstance(rule, Mapping) else None
        for j, peer in enumerate(peers if isinstance(peers, list) else []):
            bad = sorted(set(peer) - {"namespaces", "pods"}) if isinstance(peer, Mapping) else []
            for key in bad:
                # ClusterNetworkPolicyIngressPeer (v1alpha2) defines Namespaces and Pods only.
                yield d.at(
                    "NPL053",
                    f"ingress peer {key!r}: ClusterNetworkPolicyIngressPeer has only "
                    'namespaces and pods ("Exactly one of the fields must be set"); the API '
                    "server rejects a CIDR ingress peer: use a NetworkPolicy ipBlock",
                    f"spec.ingress[{i}].from[{j}]",
                )


# ---------------------------------------------------------------------------
# CiliumNetworkPolicy
# ---------------------------------------------------------------------------


def cilium_findings(parsed: ParsedKinds, reps: Sequence[WorkloadRep]) -> Iterator[LintFinding]:
    """NPL050 (toFQDNs without the DNS proxy) and NPL051 (world where a CIDR would do)."""
    policies = [p for _, p in parsed.cilium]
    for d, p in parsed.cilium:
        yield from _fqdn_without_dns(d, p, policies, reps)
        yield from _world_entity(d, p)


def _has_dns_rule(p: CiliumPolicy) -> bool:
    return any(r.has_dns_rule for r in p.sections["egress"] or ())


def _fqdn_without_dns(
    d: KindDoc, p: CiliumPolicy, every: Sequence[CiliumPolicy], reps: Sequence[WorkloadRep]
) -> Iterator[LintFinding]:
    """Cilium's layer 3 page: toFQDNs "requires Cilium to be configured with
    --enable-l7-proxy=true and an L7 policy allowing DNS requests (rules.dns YAML
    block)"; the proxy is enabled per endpoint by a DNS rule of a policy selecting it."""
    fqdn = [i for i, r in enumerate(p.sections["egress"] or ()) if r.fqdns]
    who = _blind(p, every, reps) if fqdn else None
    if who is None:
        return
    for i in fqdn:
        yield d.at(
            "NPL050",
            f"toFQDNs matches nothing for {who}: no CiliumNetworkPolicy selecting them "
            "has a DNS rule (toPorts[].rules.dns) on their DNS egress, so the DNS proxy "
            'never sees the lookups (Cilium: toFQDNs "requires ... an L7 policy allowing '
            'DNS requests (rules.dns YAML block)")',
            f"{_spec(d, p)}.egress[{i}].toFQDNs",
        )


def _blind(
    p: CiliumPolicy, every: Sequence[CiliumPolicy], reps: Sequence[WorkloadRep]
) -> str | None:
    """The selected workloads no DNS rule proxies (None: all are proxied)."""
    selected = [w for w in reps if p.selects(w.endpoint)]
    if not selected:  # no inventory pod: any DNS rule of the namespace may cover it
        same_ns = any(_has_dns_rule(q) for q in every if q.namespace == p.namespace)
        return None if same_ns else "the pods it selects"
    blind = [
        w.key for w in selected if not any(_has_dns_rule(q) for q in every if q.selects(w.endpoint))
    ]
    if not blind:
        return None
    return ", ".join(blind[:3]) + (f" (+{len(blind) - 3})" if len(blind) > 3 else "")


def _world_entity(d: KindDoc, p: CiliumPolicy) -> Iterator[LintFinding]:
    """A world entity admits "all endpoints outside of the cluster"; narrow evidence says less."""
    narrow = _narrow_evidence(p)
    for section in ("egress", "ingress"):
        key = "toEntities" if section == "egress" else "fromEntities"
        for i, r in enumerate(p.sections[section] or ()):
            broad = sorted(r.entities & WORLD_ENTITIES)
            if not broad:
                continue
            path = f"{_spec(d, p)}.{section}[{i}].{key}"
            which = ", ".join(broad)
            if narrow:
                shown = ", ".join(narrow[:4]) + (
                    f" (+{len(narrow) - 4})" if len(narrow) > 4 else ""
                )
                cidr = "toCIDRSet" if section == "egress" else "fromCIDRSet"
                yield d.at(
                    "NPL051",
                    f"entity {which} admits every address outside the cluster, but the "
                    f"policy's evidence names {len(narrow)} narrow block(s) ({shown}): "
                    f"{cidr} with them would do",
                    path,
                )
            elif section == "egress":
                yield d.at(
                    "NPL051",
                    f"entity {which} admits every address outside the cluster (Cilium: "
                    'world "corresponds to all endpoints outside of the cluster"); name the '
                    "blocks (toCIDRSet) or the names (toFQDNs) if they are known",
                    path,
                )
            else:
                yield _note_world(d, path, broad)


def _note_world(d: KindDoc, path: str, broad: Sequence[str]) -> LintFinding:
    """Public ingress is often meant: a note, not a warning."""
    f = d.at(
        "NPL051",
        f"ingress from entity {', '.join(broad)}: every address outside the cluster "
        "(a public endpoint?)",
        path,
    )
    return LintFinding(f.rule_id, "note", f.message, f.file, f.line, f.policy, f.path)


def _narrow_evidence(p: CiliumPolicy) -> list[str]:
    """The blocks the policy's ``fqdns`` evidence annotation names, if all are narrow."""
    text = ((p.raw.get("metadata") or {}).get("annotations") or {}).get(FQDN_EVIDENCE)
    try:
        blocks = sorted(json.loads(text)) if text else []
    except ValueError:
        return []
    out = []
    for b in blocks:
        try:
            net = parse_cidr(str(b))
        except ValueError:
            return []
        if net.prefixlen < NARROW_PREFIX[net.version]:
            return []
        out.append(str(net))
    return out


def _spec(d: KindDoc, p: CiliumPolicy) -> str:
    """``spec`` or ``specs[i]`` for a policy parsed from a ``specs`` list."""
    if isinstance(d.raw, Mapping) and d.raw.get("spec") is None and p.name.endswith("]"):
        return "specs[" + p.name.rsplit("[", 1)[1]
    return "spec"


# ---------------------------------------------------------------------------
# ClusterNetworkPolicy: Pass with nobody below
# ---------------------------------------------------------------------------


def pass_findings(
    parsed: ParsedKinds,
    inner: PolicySet | CiliumPolicySet,
    reps: Sequence[WorkloadRep],
) -> Iterator[LintFinding]:
    """NPL054: a Pass for pods no namespace NetworkPolicy selects in that direction.

    ``Pass``: "Skips all further ClusterNetworkPolicy rules in the current tier ...
    and passes evaluation to the next tier". For an Admin-tier Pass the next tier
    is NetworkPolicy; a pod no NetworkPolicy (or CiliumNetworkPolicy) selects for
    that direction is not decided there ("Further evaluation only happens for Pods
    not selected by a v1.NetworkPolicy") and the traffic falls to the Baseline
    tier, then to the default allow. A Baseline-tier Pass has only the default
    allow below it.
    """
    for d, p in parsed.cluster:
        subject = [w for w in reps if p.selects(w.endpoint)]
        for direction in ("ingress", "egress"):
            for i, rule in enumerate(p.rules(direction)):
                if rule.action != "Pass":
                    continue
                path = f"spec.{direction}[{i}]"
                if p.tier == "Baseline":
                    yield d.at(
                        "NPL054",
                        "Pass in the Baseline tier: no tier is below it, the default "
                        "allow applies (write Accept to say so)",
                        path,
                    )
                    continue
                open_ = [w for w in subject if not inner.selecting(w.endpoint, direction)]
                if open_:
                    names = ", ".join(w.key for w in open_[:3])
                    more = f" (+{len(open_) - 3})" if len(open_) > 3 else ""
                    yield d.at(
                        "NPL054",
                        f"Pass for {len(open_)} of {len(subject)} subject workloads that no "
                        f"namespace NetworkPolicy selects for {direction} ({names}{more}): "
                        "their traffic falls to the Baseline tier, then to the default allow",
                        path,
                    )


def kind_counts(docs: Iterable[KindDoc]) -> dict[str, int]:
    """Objects per kind."""
    out: dict[str, int] = {}
    for d in docs:
        out[d.kind] = out.get(d.kind, 0) + 1
    return dict(sorted(out.items()))
