"""Two baseline recommenders, for the quality comparison (docs/quality.md).

Both learn from the same resolved, filtered learning set as :func:`recommend`
(``Recommendation.learned``): they differ only in how they turn it into
policies, so the comparison isolates that choice.

* :func:`per_owner_exact` -- one policy per owner workload whose peers are the
  exact pods seen: one peer per pod, selected by all of its labels (ephemeral
  ones included, which is what "exactly these pods" means), external peers as
  /32 blocks. This is what a naive per-pod recorder produces.
* :func:`per_namespace` -- one policy per namespace, selecting every pod and
  allowing the observed peer namespaces (namespaceSelector only) on the union of
  the ports seen between the two namespaces; external peers as /32 blocks.

Both add the same per-namespace default-deny and DNS allowance as the
recommendation, so only the allow rules differ.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable

from recommender.inventory.workloads import dns1123
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.recommend.pipeline import Recommendation
from recommender.vocabulary import DIRECTIONS

_Ports = dict[tuple[str, ...], set[tuple[str, int]]]  # peer key -> {(protocol, port)}


def _selector(labels: Iterable[tuple[str, str]]) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels)))


def _ns_selector(namespace: str) -> LabelSelector:
    return _selector([(NAMESPACE_NAME_LABEL, namespace)])


def _ports(pairs: Iterable[tuple[str, int]]) -> tuple[PolicyPort, ...]:
    return tuple(PolicyPort(protocol=proto, port=port) for proto, port in sorted(set(pairs)))


def _ip_peer(key: str) -> Peer:
    ip = key.split(":", 1)[1]
    bits = ipaddress.ip_address(ip).max_prefixlen
    return Peer(ip_block=IPBlock(f"{ip}/{bits}"))


def _kept(rec: Recommendation) -> list[NetworkPolicy]:
    """The default-deny and DNS policies of the recommendation, shared by every baseline."""
    return [p for p in rec.policies if p.name in ("default-deny", "allow-dns")]


def _pod_peers(rec: Recommendation, key: str, own_ns: str) -> list[Peer]:
    """One peer per pod of workload ``key``, selected by all of the pod's labels."""
    assert rec.index is not None
    workload = rec.index.workloads[key]
    pods = {p.key: p for p in rec.index.inventory.pods if p.namespace == workload.namespace}
    peers = []
    for name in sorted(workload.pods):
        pod = pods[name]
        ns = None if workload.namespace == own_ns else _ns_selector(workload.namespace)
        peers.append(Peer(pod_selector=_selector(pod.labels.items()), namespace_selector=ns))
    return peers


def per_owner_exact(rec: Recommendation) -> list[NetworkPolicy]:
    """Baseline 1: one policy per owner workload with exact pod peers."""
    assert rec.index is not None
    rules: dict[str, dict[str, _Ports]] = defaultdict(
        lambda: {"ingress": defaultdict(set), "egress": defaultdict(set)}
    )
    for r in rec.learned.to_dict("records"):
        pair = (str(r["protocol"]), int(r["port"]))
        if r["src_in"] and r["src_role"] == "workload" and not r["dns"]:
            rules[r["src_key"]]["egress"][(r["dst_role"], r["dst_key"])].add(pair)
        if r["dst_in"] and r["dst_role"] == "workload":
            rules[r["dst_key"]]["ingress"][(r["src_role"], r["src_key"])].add(pair)
    out = _kept(rec)
    for key in sorted(rules):
        workload = rec.index.workloads[key]
        built: dict[str, list[Rule]] = {}
        for direction in DIRECTIONS:
            built[direction] = []
            for (role, peer_key), pairs in sorted(rules[key][direction].items()):
                if role == "workload":
                    peers = _pod_peers(rec, peer_key, workload.namespace)
                else:
                    peers = [_ip_peer(peer_key)]
                built[direction].append(Rule(peers=tuple(peers), ports=_ports(pairs)))
        out.append(
            NetworkPolicy(
                workload.namespace,
                f"{dns1123(workload.name)}-exact",
                _selector(workload.labels),
                ("Ingress", "Egress"),
                tuple(built["ingress"]),
                tuple(built["egress"]),
            )
        )
    return out


def per_namespace(rec: Recommendation) -> list[NetworkPolicy]:
    """Baseline 2: one policy per namespace allowing the observed peer namespaces."""
    per_ns: dict[str, dict[str, _Ports]] = defaultdict(
        lambda: {"ingress": defaultdict(set), "egress": defaultdict(set)}
    )
    for r in rec.learned.to_dict("records"):
        pair = (str(r["protocol"]), int(r["port"]))
        src_ns = _namespace_of(r["src_role"], r["src_key"])
        dst_ns = _namespace_of(r["dst_role"], r["dst_key"])
        if r["src_in"] and src_ns and not r["dns"]:
            per_ns[src_ns]["egress"][_ns_peer_key(dst_ns, r["dst_key"])].add(pair)
        if r["dst_in"] and dst_ns:
            per_ns[dst_ns]["ingress"][_ns_peer_key(src_ns, r["src_key"])].add(pair)
    out = _kept(rec)
    for ns in sorted(per_ns):
        built = {}
        for direction in DIRECTIONS:
            built[direction] = tuple(
                Rule(
                    peers=(
                        Peer(namespace_selector=_ns_selector(peer[1]))
                        if peer[0] == "ns"
                        else _ip_peer(peer[1]),
                    ),
                    ports=_ports(pairs),
                )
                for peer, pairs in sorted(per_ns[ns][direction].items())
            )
        out.append(
            NetworkPolicy(
                ns,
                "namespace-peers",
                LabelSelector(),
                ("Ingress", "Egress"),
                built["ingress"],
                built["egress"],
            )
        )
    return out


def _namespace_of(role: str, key: str) -> str | None:
    return key.split("/", 1)[0] if role == "workload" else None


def _ns_peer_key(namespace: str | None, key: str) -> tuple[str, str]:
    return ("ns", namespace) if namespace else ("ip", key)
