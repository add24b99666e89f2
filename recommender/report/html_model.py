"""What the HTML report shows, as plain data: graph nodes and edges, tables, policies.

The core of ``netpol report``: it maps already-read outputs (policies, the JSON of
``shadow``, ``tighten`` and ``diff``) to a :class:`ReportData`; reading files is
in :mod:`recommender.report.html_sources`, drawing in :mod:`.html_graph`.

Nodes are workload groups: a recommended policy is one group (its
``netpol-recommender.io/members`` annotation lists the workloads), so a flow
between workloads is drawn between their groups. A peer selector is resolved to
the groups whose ``podSelector.matchLabels`` it matches (the recommender writes
a group's naming labels there); a peer that matches no group keeps its own node,
named by its selector, so no allowed edge is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.labels import matches_selector, namespace_labels
from recommender.model import NetworkPolicy, Peer, PolicyPort, Rule
from recommender.recommend.selectors import selector_labels_text

MEMBERS_ANNOTATION = "netpol-recommender.io/members"
EVIDENCE_PREFIX = "evidence.netpol-recommender.io/"
#: Edge kinds, in drawing order; ``allowed`` is what the policies admit.
EDGE_KINDS = ("allowed", "newly_allowed", "would_deny", "newly_denied")
ALL_PODS = "(all pods)"


@dataclass(frozen=True)
class Node:
    """A graph node: a workload group, a single workload, or an external peer."""

    id: str
    namespace: str  # "" for addresses outside the cluster
    label: str
    kind: str  # group | workload | selector | external


@dataclass(frozen=True)
class Edge:
    """Traffic between two nodes: ``ports`` like ``TCP 8080``; ``anchor`` its explanation."""

    src: str
    dst: str
    kind: str
    ports: tuple[str, ...]
    anchor: str
    connections: int | None = None


@dataclass(frozen=True)
class Table:
    """A sortable table; ``anchors[i]`` is the HTML id of row i ("" for none)."""

    id: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    anchors: tuple[str, ...]


@dataclass(frozen=True)
class PolicyView:
    """One policy with its evidence annotations and rules in words."""

    key: str
    anchor: str
    evidence: tuple[tuple[str, str], ...]
    rules: tuple[str, ...]
    yaml: str


@dataclass
class ReportData:
    """Everything the HTML page shows."""

    title: str
    sources: list[str] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    policies: list[PolicyView] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)

    def namespaces(self) -> list[str]:
        """Namespaces with at least one node, sorted."""
        return sorted({n.namespace for n in self.nodes.values() if n.namespace})

    def add_node(self, node: Node) -> str:
        self.nodes.setdefault(node.id, node)
        return node.id


def port_text(port: PolicyPort) -> str:
    """``TCP 8080``, ``TCP 8000-8080`` or ``TCP all``.

    >>> port_text(PolicyPort("UDP", 53))
    'UDP 53'
    """
    if port.port is None:
        return f"{port.protocol} all"
    end = f"-{port.end_port}" if port.end_port is not None else ""
    return f"{port.protocol} {port.port}{end}"


def rule_ports(rule: Rule) -> tuple[str, ...]:
    """The ports of a rule as text; no ports means every port."""
    return tuple(sorted({port_text(p) for p in rule.ports or ()})) or ("all ports",)


# ---------------------------------------------------------------------------
# Groups and peers
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupIndex:
    """The groups of a policy set: labels and members, to resolve peers and workloads."""

    labels: Mapping[str, Mapping[str, str]]  # node id -> podSelector.matchLabels
    by_workload: Mapping[str, str]  # "ns/kind/name" -> node id
    namespaces: tuple[str, ...]


def group_id(policy: NetworkPolicy) -> str:
    """``ns/name``, or ``ns/(all pods)`` for a policy selecting every pod."""
    return f"{policy.namespace}/{ALL_PODS if policy.pod_selector.is_empty else policy.name}"


def index_groups(policies: Sequence[NetworkPolicy], extra_namespaces: Iterable[str]) -> GroupIndex:
    """Index the policies that select a group (a non-empty podSelector)."""
    labels: dict[str, dict[str, str]] = {}
    by_workload: dict[str, str] = {}
    for p in policies:
        if p.pod_selector.is_empty:
            continue
        labels[group_id(p)] = dict(p.pod_selector.match_labels or ())
        members = dict(p.annotations).get(MEMBERS_ANNOTATION, "")
        for member in filter(None, (m.strip() for m in members.split(","))):
            by_workload[f"{p.namespace}/{member}"] = group_id(p)
    spaces = {p.namespace for p in policies} | set(extra_namespaces)
    return GroupIndex(labels, by_workload, tuple(sorted(spaces)))


def _peer_namespaces(peer: Peer, own: str, index: GroupIndex) -> list[str] | None:
    """Namespaces a peer's namespaceSelector matches among the known ones.

    "If namespaceSelector is also set ... selects the Pods matching podSelector in
    the Namespaces selected by NamespaceSelector. Otherwise it selects the Pods
    matching podSelector in the policy's own Namespace." (NetworkPolicyPeer)
    None means the selector matches namespaces this report does not know.
    """
    if peer.namespace_selector is None:
        return [own]
    sel = peer.namespace_selector
    found = [ns for ns in index.namespaces if matches_selector(sel, namespace_labels(ns, None))]
    return found or None


def resolve_peer(data: ReportData, peer: Peer, own: str, index: GroupIndex) -> list[str]:
    """Node ids for a peer, adding selector or address nodes when no group matches."""
    if peer.ip_block is not None:
        excepted = f" except {','.join(peer.ip_block.except_)}" if peer.ip_block.except_ else ""
        text = f"{peer.ip_block.cidr}{excepted}"
        return [data.add_node(Node(f"cidr:{text}", "", text, "external"))]
    spaces = _peer_namespaces(peer, own, index)
    if spaces is None:
        text = f"ns({selector_labels_text(peer.namespace_selector)})"  # type: ignore[arg-type]
        pods = selector_labels_text(peer.pod_selector) if peer.pod_selector else ALL_PODS
        return [data.add_node(Node(f"{text}/{pods}", "", f"{text} {pods}", "selector"))]
    return [nid for ns in spaces for nid in _pods_in(data, peer, ns, index)]


def _pods_in(data: ReportData, peer: Peer, ns: str, index: GroupIndex) -> list[str]:
    if peer.pod_selector is None or peer.pod_selector.is_empty:
        return [data.add_node(Node(f"{ns}/{ALL_PODS}", ns, ALL_PODS, "selector"))]
    found = [
        gid
        for gid, labels in sorted(index.labels.items())
        if gid.startswith(f"{ns}/") and matches_selector(peer.pod_selector, labels)
    ]
    for gid in found:
        data.add_node(Node(gid, ns, gid.split("/", 1)[1], "group"))
    if found:
        return found
    text = selector_labels_text(peer.pod_selector)
    return [data.add_node(Node(f"{ns}/{text}", ns, text, "selector"))]


def workload_node(data: ReportData, workload: str, index: GroupIndex) -> str:
    """The node of a workload named ``ns/kind/name`` (its group) or ``world:ADDR``."""
    if workload in index.by_workload:
        gid = index.by_workload[workload]
        ns, name = gid.split("/", 1)
        return data.add_node(Node(gid, ns, name, "group"))
    ns, _, rest = workload.partition("/")
    if not rest or ":" in ns:  # world:1.2.3.4[/32], host, unknown peers
        return data.add_node(Node(workload, "", workload, "external"))
    return data.add_node(Node(workload, ns, rest, "workload"))


# ---------------------------------------------------------------------------
# Policies -> allowed edges and policy views
# ---------------------------------------------------------------------------


def add_policies(data: ReportData, policies: Sequence[NetworkPolicy], index: GroupIndex) -> None:
    """Allowed edges of every rule, merged per (src, dst); one view per policy."""
    ports: dict[tuple[str, str], set[str]] = {}
    anchors: dict[tuple[str, str], str] = {}
    for p in sorted(policies, key=lambda q: q.key):
        own = group_id(p)
        data.add_node(Node(own, p.namespace, own.split("/", 1)[1], "group"))
        for direction, rules in (("ingress", p.ingress), ("egress", p.egress)):
            for rule in rules or ():
                for peer_id in _rule_peers(data, rule, p.namespace, index):
                    pair = (peer_id, own) if direction == "ingress" else (own, peer_id)
                    ports.setdefault(pair, set()).update(rule_ports(rule))
                    anchors.setdefault(pair, policy_anchor(p.key))
    for pair in sorted(ports):
        data.edges.append(
            Edge(pair[0], pair[1], "allowed", tuple(sorted(ports[pair])), anchors[pair])
        )


def _rule_peers(data: ReportData, rule: Rule, ns: str, index: GroupIndex) -> list[str]:
    if not rule.peers:  # no peers: every source/destination
        return [data.add_node(Node("(anywhere)", "", "(anywhere)", "external"))]
    return [nid for peer in rule.peers for nid in resolve_peer(data, peer, ns, index)]


def policy_anchor(key: str) -> str:
    """HTML id of a policy's section.

    >>> policy_anchor("shop/cart")
    'policy-shop-cart'
    """
    return "policy-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in key)


def policy_view(p: NetworkPolicy, yaml_text: str) -> PolicyView:
    """A policy's evidence (annotations) and its rules in words."""
    notes = dict(p.annotations)
    evidence = tuple(
        (k.removeprefix(EVIDENCE_PREFIX), v)
        for k, v in sorted(notes.items())
        if k.startswith(EVIDENCE_PREFIX) or k == MEMBERS_ANNOTATION
    )
    rules = tuple(
        f"{direction}[{i}]: {_peers_text(rule)} on {', '.join(rule_ports(rule))}"
        for direction, items in (("ingress", p.ingress), ("egress", p.egress))
        for i, rule in enumerate(items or ())
    )
    return PolicyView(p.key, policy_anchor(p.key), evidence, rules, yaml_text)


def _peers_text(rule: Rule) -> str:
    if not rule.peers:
        return "anywhere"
    return "; ".join(_peer_text(peer) for peer in rule.peers)


def _peer_text(peer: Peer) -> str:
    if peer.ip_block is not None:
        return f"ipBlock {peer.ip_block.cidr}"
    parts = []
    if peer.namespace_selector is not None:
        parts.append(f"ns({selector_labels_text(peer.namespace_selector)})")
    if peer.pod_selector is not None:
        parts.append(f"pods({selector_labels_text(peer.pod_selector)})")
    return " ".join(parts)


def cell(value: Any) -> str:
    """A table cell as text: lists joined, None empty.

    >>> cell(["a", "b"]), cell(None), cell(3)
    ('a, b', '', '3')
    """
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return str(value)
