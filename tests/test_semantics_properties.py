"""Hypothesis properties of the semantics engine and the YAML round trip."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.model import (
    ContainerPort,
    Inventory,
    IPBlock,
    LabelRequirement,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.policy_io.policy_yaml import dump_policy_yaml, parse_policy
from recommender.semantics import Endpoint, compile_policies, pod_endpoint

NAMESPACES = ("ns1", "ns2")
KEYS = ("app", "tier", "example.com/env")
VALUES = ("a", "b", "1", "yes")  # "1" and "yes" must survive YAML quoting
PORT_NAMES = ("http", "dns")
CIDRS = {
    "10.0.0.0/16": ("10.0.1.0/24", "10.0.2.0/25"),
    "0.0.0.0/0": ("10.0.0.0/8",),
    "2001:db8::/32": ("2001:db8::/64",),
    "10.0.1.7/20": (),
}

INVENTORY = Inventory(namespaces=(Namespace("ns1", {"team": "a"}), Namespace("ns2", {"team": "b"})))
PORTS = (ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP", "dns"))
ENDPOINTS: tuple[Endpoint, ...] = (
    pod_endpoint("ns1", {"app": "a"}, {"team": "a"}, "10.0.1.5", PORTS),
    pod_endpoint("ns1", {"app": "b", "tier": "1"}, {"team": "a"}, "10.0.2.5"),
    pod_endpoint("ns2", {"app": "a", "example.com/env": "yes"}, {"team": "b"}, "10.0.3.5", PORTS),
    pod_endpoint("ns2", {}, {"team": "b"}, "10.1.0.5", (ContainerPort(8080, "TCP", "http"),)),
    Endpoint("world", ip="8.8.8.8"),
    Endpoint("world", ip="2001:db8::9"),
    Endpoint("host", ip="10.0.9.1"),
)
FLOW_PORTS = ((80, "TCP"), (53, "UDP"), (8080, "TCP"), (80, "SCTP"))
FLOWS = [
    (s, d, p, proto) for s in ENDPOINTS for d in ENDPOINTS if s != d for p, proto in FLOW_PORTS
]

# -- strategies ------------------------------------------------------------

label_maps = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2)


@st.composite
def requirements(draw) -> LabelRequirement:
    op = draw(st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist")))
    values = ()
    if op in ("In", "NotIn"):
        values = tuple(draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=2, unique=True)))
    return LabelRequirement(draw(st.sampled_from(KEYS)), op, values)


@st.composite
def selectors(draw) -> LabelSelector:
    labels = draw(st.none() | label_maps)
    exprs = draw(st.none() | st.lists(requirements(), max_size=2).map(tuple))
    return LabelSelector(None if labels is None else tuple(sorted(labels.items())), exprs)


@st.composite
def peers(draw) -> Peer:
    if draw(st.booleans()):
        cidr = draw(st.sampled_from(sorted(CIDRS)))
        inside = CIDRS[cidr]
        excepts = draw(st.lists(st.sampled_from(inside), unique=True, max_size=2)) if inside else []
        return Peer(ip_block=IPBlock(cidr, tuple(excepts)))
    pod, ns = draw(st.none() | selectors()), draw(st.none() | selectors())
    if pod is None and ns is None:
        pod = draw(selectors())
    return Peer(pod_selector=pod, namespace_selector=ns)


@st.composite
def ports(draw) -> PolicyPort:
    protocol = draw(st.sampled_from(("TCP", "UDP", "SCTP")))
    kind = draw(st.sampled_from(("all", "number", "range", "name")))
    if kind == "all":
        return PolicyPort(protocol)
    if kind == "name":
        return PolicyPort(protocol, draw(st.sampled_from(PORT_NAMES)))
    first = draw(st.sampled_from((53, 80, 8080)))
    end = draw(st.integers(first, 9000)) if kind == "range" else None
    return PolicyPort(protocol, first, end)


def _optional_list(strategy):
    return st.none() | st.lists(strategy, max_size=2).map(tuple)


rules = st.builds(Rule, peers=_optional_list(peers()), ports=_optional_list(ports()))


@st.composite
def policies(draw, name: str = "p") -> NetworkPolicy:
    types = draw(st.sampled_from((("Ingress",), ("Egress",), ("Ingress", "Egress"))))
    return NetworkPolicy(
        namespace=draw(st.sampled_from(NAMESPACES)),
        name=name,
        pod_selector=draw(selectors()),
        policy_types=types,
        ingress=draw(_optional_list(rules)),
        egress=draw(_optional_list(rules)),
        labels=tuple(sorted(draw(label_maps).items())),
    )


@st.composite
def policy_lists(draw, max_size: int = 4) -> list[NetworkPolicy]:
    n = draw(st.integers(0, max_size))
    return [draw(policies(name=f"p{i}")) for i in range(n)]


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- properties --------------------------------------------------------------


@FAST
@given(st.data())
def test_verdict_does_not_depend_on_policy_order(data):
    ps = data.draw(policy_lists())
    shuffled = data.draw(st.permutations(ps))
    a, b = compile_policies(ps, INVENTORY), compile_policies(shuffled, INVENTORY)
    assert a.decide_many(FLOWS) == b.decide_many(FLOWS)


@FAST
@given(policy_lists(max_size=3), policies(name="extra"))
def test_adding_a_policy_only_denies_by_newly_isolating(ps, extra):
    before = compile_policies(ps, INVENTORY)
    after = compile_policies([*ps, extra], INVENTORY)
    for flow, old, new in zip(
        FLOWS, before.decide_many(FLOWS), after.decide_many(FLOWS), strict=True
    ):
        if old.is_allowed and not new.is_allowed:
            src, dst = flow[0], flow[1]
            newly_egress = not old.egress_isolated and after.selecting(src, "egress") != ()
            newly_ingress = not old.ingress_isolated and after.selecting(dst, "ingress") != ()
            assert newly_egress or newly_ingress
            if new.denied_by in ("egress", "both"):
                assert newly_egress
                assert extra.key in new.egress_policies
            if new.denied_by in ("ingress", "both"):
                assert newly_ingress
                assert extra.key in new.ingress_policies


@FAST
@given(policies())
def test_yaml_round_trip_keeps_the_model(policy):
    text = dump_policy_yaml(policy)
    back = parse_policy(yaml.safe_load(text))
    assert back == NetworkPolicy(**{**policy.__dict__, "source": "<memory>"})
    assert dump_policy_yaml(back) == text


@FAST
@given(policy_lists(max_size=3))
def test_yaml_round_trip_keeps_meaning(ps):
    back = [parse_policy(yaml.safe_load(dump_policy_yaml(p))) for p in ps]
    assert compile_policies(ps, INVENTORY).decide_many(FLOWS) == compile_policies(
        back, INVENTORY
    ).decide_many(FLOWS)


@FAST
@given(policy_lists(max_size=3))
def test_decision_explanations_are_consistent(ps):
    for d in compile_policies(ps, INVENTORY).decide_many(FLOWS):
        assert d.egress_isolated == bool(d.egress_policies)
        assert d.ingress_isolated == bool(d.ingress_policies)
        egress_ok = not d.egress_isolated or bool(d.egress_rules)
        ingress_ok = not d.ingress_isolated or bool(d.ingress_rules)
        assert d.is_allowed == (egress_ok and ingress_ok)
        assert all("#egress[" in r for r in d.egress_rules)
        assert all("#ingress[" in r for r in d.ingress_rules)
