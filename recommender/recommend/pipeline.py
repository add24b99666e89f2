"""The recommendation as one pure function: observations + inventory -> policies.

:func:`recommend` resolves peers, decides the learning set, groups workloads by
profile, picks selectors and synthesizes policies. It touches no file; the
``recommend`` command reads input and writes the result with
``recommender.policy_io.policy_writer``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from recommender.inventory.workloads import (
    Workload,
    WorkloadIndex,
    build_index,
    dns1123,
    unique_names,
)
from recommender.model import Inventory, LabelSelector, NetworkPolicy
from recommender.recommend.accounting import Accounting, account
from recommender.recommend.groups import CommunicationGrouper, build_profile_matrix
from recommender.recommend.learning import (
    check_observations,
    mark_declared,
    resolve_table,
)
from recommender.recommend.selectors import cover_selectors, find_selector
from recommender.recommend.stability import EvidenceInput, Stability, assess_stability
from recommender.recommend.steps import (
    Edge,
    classify,
    edges_of,
    find_dns,
    namespaces_in_scope,
    timestamp_text,
    with_node_local_dns,
)
from recommender.recommend.suspicious import ScanFinding
from recommender.recommend.synthesize import (
    EVIDENCE_PREFIX,
    PUBLIC_INGRESS_MIN_SOURCES,
    RuleBuilder,
    RuleNotes,
    SynthesisOptions,
    allow_dns,
    default_deny,
    fqdn_annotation,
    group_policy,
)


@dataclass(frozen=True)
class RecommendOptions:
    """Everything the user can choose (see ``netpol recommend --help``)."""

    namespaces: tuple[str, ...] = ()
    exclude_namespaces: tuple[str, ...] = ()
    merge_similar: float | None = None
    cidr_budget: int = 0
    named_ports: bool = False
    port_ranges: bool = False
    allow_host: bool = False
    include_suspicious: bool = False
    public_ingress_min_sources: int = PUBLIC_INGRESS_MIN_SOURCES

    def synthesis(self) -> SynthesisOptions:
        return SynthesisOptions(
            self.named_ports,
            self.port_ranges,
            self.allow_host,
            self.cidr_budget,
            self.public_ingress_min_sources,
        )


@dataclass(frozen=True)
class Group:
    """A communication group: workloads sharing one policy."""

    namespace: str
    name: str
    selector: LabelSelector
    members: tuple[Workload, ...]
    edges: frozenset[Edge]
    extra_edges: tuple[tuple[str, tuple[Edge, ...]], ...] = ()  # merge report per member
    connections: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    selector_method: str = "exact"
    notes: RuleNotes = field(default_factory=RuleNotes, compare=False)


@dataclass
class Recommendation:
    """The result of :func:`recommend`; render with :meth:`summary_markdown`."""

    policies: list[NetworkPolicy]
    groups: list[Group]
    table: pd.DataFrame  # every resolved observation row, with ``reason`` (None = learned)
    warnings: list[str]
    scans: list[ScanFinding]
    namespaces: list[str]
    skipped_namespaces: dict[str, str]
    options: RecommendOptions
    window: tuple[str | None, str | None] = (None, None)
    dns: Any = None
    index: WorkloadIndex | None = None
    observations: int | None = None  # rows given to recommend(), for the accounting
    coverage: Any = None  # recommender.recommend.coverage.Coverage, set by the recommend command
    stability: Stability | None = None  # evidence sufficiency per group (recommend.stability)
    #: Own-node traffic NetworkPolicy v1 cannot deny (``recommend.own_node``); set by the
    #: recommend command for ``--kind networkpolicy``, None otherwise.
    unexpressible: list[Any] | None = None

    @cached_property
    def accounting(self) -> Accounting:
        """Every observation as learned, excluded or unknown (``recommend.accounting``)."""
        return account(self.table, self.groups, self.observations)

    @property
    def learned(self) -> pd.DataFrame:
        """Rows of the learning set."""
        return self.table[self.table["reason"].isna()]

    @property
    def excluded(self) -> pd.DataFrame:
        """Rows not learned, with their reason code."""
        return self.table[self.table["reason"].notna()]

    def policies_in(self, namespace: str) -> list[NetworkPolicy]:
        return [p for p in self.policies if p.namespace == namespace]

    def summary_markdown(self, check: Any = None) -> str:
        """SUMMARY.md text; ``check`` is an optional :class:`SelfCheck` to include."""
        from recommender.recommend.summary import render_summary

        return render_summary(self, check)

    def self_check(self, inventory: Inventory) -> Any:
        """Validate the policies and replay every observation against them."""
        from recommender.recommend.selfcheck import run_self_check

        return run_self_check(self, inventory)


def recommend(
    observations: pd.DataFrame,
    inventory: Inventory,
    options: RecommendOptions | None = None,
    evidence: EvidenceInput | None = None,
) -> Recommendation:
    """Learn least-privilege policies from an observation table.

    Parameters
    ----------
    observations
        Rows with ``recommender.model.OBSERVATION_COLUMNS``.
    inventory
        The cluster snapshot the selectors are computed against.
    options
        User choices; defaults are exact (no merging, exact /32 blocks).
    evidence
        Hourly history, lost events and the window end for the evidence
        sufficiency (``recommend.stability``); default: first and last seen only.
    """
    options = options or RecommendOptions()
    check_observations(observations)
    index = build_index(inventory)
    warnings: list[str] = []
    scope, skipped = namespaces_in_scope(index, options, warnings)
    dns = find_dns(index, warnings)
    table = resolve_table(observations, index)
    mark_declared(table, index)
    dns = with_node_local_dns(dns, table, index)
    scans = classify(table, scope, dns, options.include_suspicious, options.allow_host, index)
    edges = edges_of(table, scope)
    groups: list[Group] = []
    for ns in scope:
        groups.extend(_groups_in(ns, index, edges, options, warnings))
    policies = _policies(scope, groups, dns, table, index, options, warnings)
    window = (
        timestamp_text(observations["first_seen"].min()) if len(observations) else None,
        timestamp_text(observations["last_seen"].max()) if len(observations) else None,
    )
    _dns_warnings(scope, table, warnings)
    rec = Recommendation(
        policies,
        groups,
        table,
        warnings,
        scans,
        scope,
        skipped,
        options,
        window,
        dns,
        index,
        observations=len(observations),
    )
    rec.stability = assess_stability(rec, observations, evidence)
    return rec


def _dns_warnings(scope: Sequence[str], table: pd.DataFrame, warnings: list[str]) -> None:
    dns_rows = table[table["dns"]]
    seen = {k.split("/", 1)[0] for k in dns_rows["src_key"]}
    missing = [ns for ns in scope if ns not in seen]
    if missing:
        warnings.append(
            "no DNS flows captured from namespace(s) "
            + ", ".join(missing)
            + "; allow-dns was written from the inventory anyway"
        )


def _groups_in(
    ns: str,
    index: WorkloadIndex,
    edges: dict[str, dict[Edge, dict[str, Any]]],
    options: RecommendOptions,
    warnings: list[str],
) -> list[Group]:
    """Cluster the namespace's workloads by profile and give each group a selector."""
    workloads = [w for w in index.in_namespace(ns) if not w.host_network]
    if not workloads:
        return []
    profiles = {w.key: frozenset(edges.get(w.key, {})) for w in workloads}
    rows, _, matrix = build_profile_matrix(profiles)  # type: ignore[arg-type]
    if matrix.shape[1] == 0:
        labels = [0] * len(rows)
    else:
        labels = CommunicationGrouper(options.merge_similar).fit(matrix).labels_.tolist()
    members: dict[int, list[Workload]] = defaultdict(list)
    for key, label in zip(rows, labels, strict=True):
        members[label].append(index.workloads[str(key)])
    raw: list[tuple[list[Workload], LabelSelector, str]] = []
    for label in sorted(members):
        raw.extend(_with_selector(ns, members[label], workloads, warnings))
    names = unique_names((_key(m), _group_name(m)) for m, _, _ in raw)
    out = [_group(ns, names[_key(m)], m, sel, how, profiles, edges) for m, sel, how in raw]
    return sorted(out, key=lambda g: g.name)


def _key(members: list[Workload]) -> str:
    return "|".join(sorted(w.key for w in members))


def _with_selector(
    ns: str, members: list[Workload], universe: list[Workload], warnings: list[str]
) -> list[tuple[list[Workload], LabelSelector, str]]:
    """The group with its exact selector, or split into one group per workload."""
    others = [w.label_map for w in universe if w not in members]
    choice = find_selector([w.label_map for w in members], others)
    if choice is not None:
        return [(members, choice.selector, choice.method)]
    if not others:
        warnings.append(
            f"{ns}: group {', '.join(w.name for w in members)} is every workload of "
            f"the namespace and shares no label; it is selected with podSelector {{}}"
        )
        return [(members, LabelSelector(), "namespace")]
    if len(members) > 1:
        names = ", ".join(w.name for w in members)
        warnings.append(
            f"{ns}: no label selector selects exactly {names}; "
            "the group was split along the selectors that exist"
        )
        cover = cover_selectors([w.label_map for w in members], [w.label_map for w in universe])
        out = [([members[i] for i in ix], sel, "exact") for sel, ix in cover]
        covered = {i for _, ix in cover for i in ix}
        for i, member in enumerate(members):
            if i not in covered:
                out.extend(_with_selector(ns, [member], universe, warnings))
        return out
    warnings.append(
        f"{ns}/{members[0].name}: no stable label selector selects exactly this "
        "workload; it gets no allow policy and stays under default-deny"
    )
    return []


def _group_name(members: list[Workload]) -> str:
    names = sorted(w.name for w in members)
    if len(names) == 1:
        return names[0]
    tokens = [n.split("-") for n in names]
    prefix = []
    for parts in zip(*tokens, strict=False):
        if len(set(parts)) != 1:
            break
        prefix.append(parts[0])
    return dns1123("-".join(prefix) if prefix else f"{names[0]}-group")


def _group(
    ns: str,
    name: str,
    members: list[Workload],
    selector: LabelSelector,
    how: str,
    profiles: dict[str, frozenset[Edge]],
    edges: dict[str, dict[Edge, dict[str, Any]]],
) -> Group:
    union: frozenset[Edge] = frozenset().union(*(profiles[m.key] for m in members))
    extra = tuple(
        (m.name, tuple(sorted(union - profiles[m.key])))
        for m in sorted(members, key=lambda w: w.name)
        if union - profiles[m.key]
    )
    ev: list[dict[str, Any]] = [edges[m.key][e] for m in members for e in profiles[m.key]]
    return Group(
        ns,
        name,
        selector,
        tuple(sorted(members, key=lambda w: (w.name, w.key))),
        union,
        extra,
        connections=sum(int(x["connections"]) for x in ev),
        first_seen=min((x["first_seen"] for x in ev if x["first_seen"]), default=None),
        last_seen=max((x["last_seen"] for x in ev if x["last_seen"]), default=None),
        selector_method=how,
    )


def _policies(
    scope: Sequence[str],
    groups: list[Group],
    dns: Any,
    table: pd.DataFrame,
    index: WorkloadIndex,
    options: RecommendOptions,
    warnings: list[str],
) -> list[NetworkPolicy]:
    out: list[NetworkPolicy] = []
    fqdns = _fqdns(table)
    for ns in scope:
        out.append(default_deny(ns))
        out.append(allow_dns(ns, dns, _dns_evidence(table, ns)))
    for group in groups:
        policy = _group_policy(group, index, options, fqdns)
        if policy is not None:
            out.append(policy)
    return sorted(out, key=lambda p: (p.namespace, _policy_rank(p.name), p.name))


def _policy_rank(name: str) -> int:
    return {"default-deny": 0, "allow-dns": 1}.get(name, 2)


def _group_policy(
    group: Group, index: WorkloadIndex, options: RecommendOptions, fqdns: dict[str, list[str]]
) -> NetworkPolicy | None:
    builder = RuleBuilder(index, options.synthesis(), group.namespace, group.members, fqdns)
    per_dir: dict[str, dict[str, set[tuple[str, int]]]] = {"ingress": {}, "egress": {}}
    for direction, peer, proto, port in group.edges:
        per_dir[direction].setdefault(peer, set()).add((proto, port))
    rules = {d: builder.rules(d, peers) for d, peers in per_dir.items()}
    group.notes.__dict__.update(builder.notes.__dict__)
    annotations = _evidence(group)
    members = ",".join(sorted({o for m in group.members for o in m.owners}))
    annotations.append(("netpol-recommender.io/members", members))
    fq = fqdn_annotation(builder.notes.fqdns)
    if fq:
        annotations.append(fq)
    return group_policy(group.namespace, group.name, group.selector, rules, annotations)


def _evidence(group: Group) -> list[tuple[str, str]]:
    return evidence_annotations(group.connections, group.first_seen, group.last_seen)


def evidence_annotations(
    connections: int, first: str | None, last: str | None
) -> list[tuple[str, str]]:
    """Evidence annotations; first and last seen only when known."""
    out = [(f"{EVIDENCE_PREFIX}connections", str(connections))]
    if first:
        out.append((f"{EVIDENCE_PREFIX}first-seen", first))
    if last:
        out.append((f"{EVIDENCE_PREFIX}last-seen", last))
    return out


def _dns_evidence(table: pd.DataFrame, ns: str) -> list[tuple[str, str]]:
    rows = table[table["dns"] & table["src_key"].str.startswith(f"{ns}/")]
    if rows.empty:
        return evidence_annotations(0, None, None)
    return evidence_annotations(
        int(rows["learn"].sum()),
        timestamp_text(rows["first_seen"].min()),
        timestamp_text(rows["last_seen"].max()),
    )


def _fqdns(table: pd.DataFrame) -> dict[str, list[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    learned = table[table["reason"].isna()]
    for key, names in zip(learned["dst_key"], learned["dst_names"], strict=True):
        if key.startswith("world:") and names:
            out[key.split(":", 1)[1]].update(names)
    return {k: sorted(v) for k, v in out.items()}
