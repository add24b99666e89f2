"""Hypothesis properties of tighten: the three guarantees of issue 6, on random policy sets.

Random broad policies over the small fixture cluster, random evidence; then:

* the tightened set allows every observed case the current set allows;
* it denies every observed case the current set denies (no widening) and,
  with widening accepted, newly allows only cases of widened observations;
* over the semantic-diff universe, nothing becomes allowed without widening;
* a second run on the same evidence changes nothing (byte-identical YAML).

The cases are built here from the inventory, not by tighten's own expansion,
and judged by the semantics engine directly.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.model import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.policy_io.policy_yaml import dump_policy_yaml
from recommender.semantics import compile_policies, endpoint_for_ip, endpoint_for_pod
from recommender.tighten import TightenOptions, tighten
from tests.fixtures.tighten.cluster import WORKLOADS, frame, inventory, observation

INV = inventory()
NAME = "kubernetes.io/metadata.name"


def _sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


PEERS = [
    Peer(pod_selector=LabelSelector()),
    Peer(pod_selector=_sel(app="cart")),
    Peer(pod_selector=_sel(tier="api")),
    Peer(namespace_selector=LabelSelector()),
    Peer(namespace_selector=_sel(team="data")),
    Peer(namespace_selector=_sel(**{NAME: "shop"})),
    Peer(namespace_selector=_sel(team="data"), pod_selector=LabelSelector()),
    Peer(namespace_selector=_sel(**{NAME: "data"}), pod_selector=_sel(app="db")),
    Peer(ip_block=IPBlock("0.0.0.0/0")),
    Peer(ip_block=IPBlock("0.0.0.0/0", ("10.0.0.0/8",))),
    Peer(ip_block=IPBlock("198.51.100.0/24", ("198.51.100.9/32",))),
    Peer(ip_block=IPBlock("10.0.1.0/24")),  # pod IPs of shop
]
PORTS = [
    PolicyPort("TCP", 8080),
    PolicyPort("TCP", 8000, 9000),
    PolicyPort("TCP"),
    PolicyPort("UDP"),
    PolicyPort("UDP", 53),
    PolicyPort("TCP", 5432),
    PolicyPort("TCP", 443),
    PolicyPort("TCP", "http"),
    PolicyPort("TCP", 1, 65535),
]
SELECTED = [
    LabelSelector(),
    _sel(app="frontend"),
    _sel(tier="api"),
    _sel(app="db"),
    _sel(app="cache"),
    _sel(app="job"),
]
NAMESPACE_OF = {"frontend": "shop", "api": "shop", "db": "data", "cache": "data", "job": "batch"}

rules = st.builds(
    Rule,
    st.one_of(
        st.none(), st.lists(st.sampled_from(PEERS), min_size=1, max_size=3, unique=True).map(tuple)
    ),
    st.one_of(
        st.none(), st.lists(st.sampled_from(PORTS), min_size=1, max_size=3, unique=True).map(tuple)
    ),
)


@st.composite
def policy(draw: st.DrawFn, index: int) -> NetworkPolicy:
    selector = draw(st.sampled_from(SELECTED))
    label = next((v for _, v in selector.match_labels or ()), None)
    ns = NAMESPACE_OF.get(label or "", draw(st.sampled_from(["shop", "data", "batch"])))
    types = draw(st.sampled_from([("Ingress",), ("Egress",), ("Ingress", "Egress")]))
    ingress = tuple(draw(st.lists(rules, max_size=3))) if "Ingress" in types else None
    egress = tuple(draw(st.lists(rules, max_size=3))) if "Egress" in types else None
    return NetworkPolicy(ns, f"p{index}", selector, types, ingress, egress)


@st.composite
def policy_sets(draw: st.DrawFn) -> list[NetworkPolicy]:
    n = draw(st.integers(1, 5))
    return [draw(policy(i)) for i in range(n)]


ENDS = [*sorted(WORKLOADS), "203.0.113.5", "198.51.100.7", "198.51.100.9", "192.168.0.1"]
observations = st.lists(
    st.tuples(
        st.sampled_from(ENDS),
        st.sampled_from(ENDS),
        st.sampled_from(
            [(8080, "TCP"), (8500, "TCP"), (5432, "TCP"), (53, "UDP"), (443, "TCP"), (6379, "TCP")]
        ),
        st.sampled_from(["allowed", "audit", "policy_denied"]),
    ),
    min_size=1,
    max_size=12,
).map(lambda rows: [r for r in rows if r[0] != r[1] and (r[0] in WORKLOADS or r[1] in WORKLOADS)])


def _evidence(rows):
    out = []
    for src, dst, (port, proto), verdict in rows:
        kinds = {"192.168.0.1": "host"}
        out.append(
            observation(
                src,
                dst,
                port,
                proto,
                verdict=verdict,
                src_kind=kinds.get(src),
                dst_kind=kinds.get(dst),
            )
        )
    return frame(out)


def _endpoints(name: str):
    if name in WORKLOADS:
        owner = WORKLOADS[name][2]
        return [endpoint_for_pod(p, INV) for p in INV.pods if p.owner_name == owner]
    return [endpoint_for_ip(name, INV)]


def _cases(rows):
    return [
        (i, (s, d, port, proto))
        for i, (src, dst, (port, proto), _) in enumerate(rows)
        for s in _endpoints(src)
        for d in _endpoints(dst)
    ]


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(policy_sets(), observations)
def test_tightening_keeps_allowed_and_never_allows_denied(policies, rows):
    if not rows:
        return
    res = tighten(policies, _evidence(rows), INV, TightenOptions(semantic_diff=True))
    before, after = compile_policies(policies, INV), compile_policies(res.proposed, INV)
    for _, case in _cases(rows):
        a, b = before.decide(*case).verdict, after.decide(*case).verdict
        if a == "allowed":
            assert b == "allowed", case
        if a == "denied":
            assert b == "denied", case
    assert res.diff is not None
    assert res.diff.counts()["newly_allowed"] == 0
    # Isolation is never removed: same policies, same policyTypes.
    assert [(p.key, p.policy_types) for p in res.proposed] == [
        (p.key, p.policy_types) for p in policies
    ]


@SETTINGS
@given(policy_sets(), observations)
def test_accepted_widening_allows_only_widened_observations(policies, rows):
    if not rows:
        return
    res = tighten(
        policies, _evidence(rows), INV, TightenOptions(accept_widening=True, semantic_diff=False)
    )
    widened = {w.judged.observed.index for w in res.widenings if w.possible}
    assert all(rows[i][3] != "policy_denied" for i in widened)  # a dropped attempt is no evidence
    widened_edges = {rows[i][:3] for i in widened}
    before, after = compile_policies(policies, INV), compile_policies(res.proposed, INV)
    for i, case in _cases(rows):
        a, b = before.decide(*case).verdict, after.decide(*case).verdict
        if a == "allowed":
            assert b == "allowed", case
        if a == "denied" and b == "allowed":
            # widened on its own evidence, or the same edge as a widened observation
            assert i in widened or rows[i][:3] in widened_edges, case
    assert res.check.ok, res.check.violations


@SETTINGS
@given(policy_sets(), observations, st.booleans(), st.integers(0, 300))
def test_second_run_is_byte_identical(policies, rows, widen, budget):
    if not rows:
        return
    evidence = _evidence(rows)
    opts = TightenOptions(accept_widening=widen, cidr_budget=budget, semantic_diff=False)
    first = tighten(policies, evidence, INV, opts)
    second = tighten(first.proposed, evidence, INV, opts)
    assert second.changes == []
    assert [dump_policy_yaml(p) for p in second.proposed] == [
        dump_policy_yaml(p) for p in first.proposed
    ]
