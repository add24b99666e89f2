"""Synthesis: ports, peers, DNS, public endpoints; and the allow-exactly-what-was-seen property."""

from __future__ import annotations

import itertools

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.inventory.workloads import build_index
from recommender.model import OBSERVATION_COLUMNS, LabelSelector
from recommender.policy_io.policy_yaml import policy_to_dict
from recommender.recommend.pipeline import RecommendOptions, recommend
from recommender.recommend.synthesize import (
    PORT_RANGE_MIN_RUN,
    DnsTarget,
    RuleBuilder,
    SynthesisOptions,
    allow_dns,
    compact_ports,
    default_deny,
    without_evidence,
)
from recommender.semantics import compile_policies, endpoint_for_pod
from tests.fixtures.recommend.shop import SHOP_APPS, obs, shop_inventory

INVENTORY = shop_inventory()
INDEX = build_index(INVENTORY)


def _wl(name):
    return next(w for w in INDEX.workloads.values() if w.name == name)


def test_default_deny_selects_every_pod_both_directions():
    d = policy_to_dict(default_deny("shop"))
    assert d["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_allow_dns_is_egress_only_on_dns_ports():
    dns = DnsTarget(
        "kube-system", LabelSelector((("k8s-app", "kube-dns"),)), (("UDP", 53), ("TCP", 53))
    )
    d = policy_to_dict(allow_dns("shop", dns))
    assert d["spec"]["policyTypes"] == ["Egress"]
    assert d["spec"]["egress"][0]["ports"] == [
        {"protocol": "TCP", "port": 53},
        {"protocol": "UDP", "port": 53},
    ]


def test_port_ranges_only_for_dense_runs():
    run = [("TCP", 8000 + i) for i in range(PORT_RANGE_MIN_RUN)]
    assert [(p.port, p.end_port) for p in compact_ports(run, True)] == [(8000, 8002)]
    short = run[:-1] + [("TCP", 9000)]
    assert [(p.port, p.end_port) for p in compact_ports(short, True)] == [
        (8000, None),
        (8001, None),
        (9000, None),
    ]
    assert all(p.end_port is None for p in compact_ports(run, False))


def _builder(namespace="shop", members=("cart",), **opts):
    return RuleBuilder(INDEX, SynthesisOptions(**opts), namespace, [_wl(m) for m in members], {})


def test_same_namespace_peer_has_pod_selector_only_and_cross_namespace_has_both():
    b = _builder()
    frontend, prom = _wl("frontend").key, _wl("prometheus").key
    rules = b.rules("ingress", {frontend: {("TCP", 7070)}, prom: {("TCP", 9090)}})
    peers = [policy_to_dict_peer(r.peers[0]) for r in rules]
    assert {"podSelector": {"matchLabels": {"app": "frontend"}}} in peers
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app": "prometheus"}},
    } in peers


def policy_to_dict_peer(peer):
    from recommender.policy_io.policy_yaml import _peer_to_dict

    return _peer_to_dict(peer)


def test_namespace_selector_alone_only_when_every_workload_is_a_peer():
    b = _builder(namespace="monitoring", members=("prometheus",))
    every = {w.key: {("TCP", 9090)} for w in INDEX.in_namespace("shop")}
    rules = b.rules("egress", every)
    assert len(rules) == 1
    assert [policy_to_dict_peer(p) for p in rules[0].peers] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}
    ]
    assert b.notes.namespace_wide == ["shop"]
    most = dict(list(every.items())[:-1])
    rules = _builder(namespace="monitoring", members=("prometheus",)).rules("egress", most)
    assert all("podSelector" in policy_to_dict_peer(p) for p in rules[0].peers)


def test_named_ports_need_every_destination_pod_to_declare_the_name():
    b = _builder(members=("cart",), named_ports=True)
    rules = b.rules("ingress", {_wl("frontend").key: {("TCP", 7070), ("TCP", 7071)}})
    assert sorted(str(p.port) for p in rules[0].ports) == ["7071", "grpc"]


def test_public_endpoint_admits_internet_minus_pod_networks():
    b = _builder(members=("frontend",), public_ingress_min_sources=3)
    world = {f"world:198.51.100.{i}": {("TCP", 8080)} for i in range(3)}
    rules = b.rules("ingress", world)
    block = rules[0].peers[0].ip_block
    assert block.cidr == "0.0.0.0/0"
    assert block.except_ == ("10.244.0.0/23",)
    below = _builder(members=("frontend",), public_ingress_min_sources=4).rules("ingress", world)
    assert sorted(p.ip_block.cidr for p in below[0].peers) == [
        f"198.51.100.{i}/32" for i in range(3)
    ]


def test_without_evidence_drops_only_evidence():
    rec = recommend(
        pd.DataFrame([obs("frontend", "cart", 7070)], columns=OBSERVATION_COLUMNS), INVENTORY
    )
    cart = next(p for p in rec.policies if p.name == "cart")
    keys = [k for k, _ in without_evidence(cart).annotations]
    assert keys == ["netpol-recommender.io/members"]


# -- property: the policies allow exactly the pod-to-pod triples they were built from ------

PORTS = (80, 7070, 9090)
PAIRS = [(a, b, p) for a, b in itertools.permutations(SHOP_APPS, 2) for p in PORTS]


def _endpoint(app):
    """A real pod of ``app`` (with its container ports, for named ports)."""
    pod = next(p for p in INVENTORY.pods if p.owner_name == app)
    return endpoint_for_pod(pod, INVENTORY)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.sampled_from(PAIRS), min_size=1, max_size=14), st.booleans(), st.booleans())
def test_property_policies_allow_exactly_the_observed_triples(seen, named, ranges):
    rows = [obs(a, b, p) for a, b, p in sorted(seen)]
    frame = pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))
    rec = recommend(frame, INVENTORY, RecommendOptions(named_ports=named, port_ranges=ranges))
    check = rec.self_check(INVENTORY)
    assert check.ok, check.message()
    ps = compile_policies(rec.policies, INVENTORY)
    for a, b, p in PAIRS:
        allowed = ps.decide(_endpoint(a), _endpoint(b), p, "TCP").is_allowed
        assert allowed == ((a, b, p) in seen), (a, b, p)
