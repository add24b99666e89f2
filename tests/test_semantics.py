"""Table-driven NetworkPolicy semantics: fixture policies, a flow, the verdict and why.

Fixture policies live in tests/fixtures/policies/ and are named for what they mean.
The inventory below has three namespaces:

* shop (team=shop): web 10.0.1.10, api 10.0.1.11, db 10.0.1.12 (env=prod, canary)
* other (team=other): client 10.0.2.10, api 10.0.2.11
* monitoring (no labels in the inventory): prom 10.0.3.10
"""

from __future__ import annotations

import pytest

from recommender.model import ContainerPort, Inventory, Namespace, Node, Pod
from recommender.policy_io.policy_yaml import load_policies
from recommender.semantics import (
    Decision,
    Endpoint,
    compile_policies,
    endpoint_for_ip,
    endpoint_for_pod,
    pod_endpoint,
)
from tests.conftest import FIXTURES

POLICIES = FIXTURES / "policies"

API_PORTS = (
    ContainerPort(9090, "TCP", "http"),
    ContainerPort(9100, "TCP", "metrics"),
    ContainerPort(53, "UDP", "dns"),
    ContainerPort(7777, "SCTP", "sig"),
)


def _pod(ns: str, name: str, ip: str, labels: dict[str, str], ports=()) -> Pod:
    return Pod(ns, name, labels, ips=(ip,), phase="Running", container_ports=tuple(ports))


INVENTORY = Inventory(
    namespaces=(
        Namespace("shop", {"team": "shop", "kubernetes.io/metadata.name": "shop"}),
        Namespace("other", {"team": "other"}),
        Namespace("monitoring", {}),
    ),
    pods=(
        _pod("shop", "web", "10.0.1.10", {"app": "web", "tier": "fe"}, [ContainerPort(8080)]),
        _pod("shop", "api", "10.0.1.11", {"app": "api"}, API_PORTS),
        _pod(
            "shop",
            "db",
            "10.0.1.12",
            {"app": "db", "env": "prod", "canary": "no"},
            [ContainerPort(5432, "TCP", "http")],
        ),
        _pod("other", "client", "10.0.2.10", {"app": "client"}),
        _pod("other", "api", "10.0.2.11", {"app": "api"}, API_PORTS),
        _pod("monitoring", "prom", "10.0.3.10", {"app": "prom"}),
        Pod("kube-system", "agent", {"app": "agent"}, ips=("10.1.0.1",), host_network=True),
    ),
    nodes=(Node("node-1", addresses=("10.1.0.1",), pod_cidrs=("10.0.0.0/16",)),),
)

ENDPOINTS: dict[str, Endpoint] = {p.key: endpoint_for_pod(p, INVENTORY) for p in INVENTORY.pods}
ENDPOINTS.update(
    {
        "world": endpoint_for_ip("8.8.8.8", INVENTORY),
        "world-far": endpoint_for_ip("192.168.5.5", INVENTORY),
        "world6": endpoint_for_ip("2001:db8:1::5", INVENTORY),
        "world6-except": endpoint_for_ip("2001:db8::5", INVENTORY),
        "node": endpoint_for_ip("10.1.0.1", INVENTORY),
        "gone": endpoint_for_ip("10.0.9.9", INVENTORY),
    }
)


def decide(files: list[str], src: str, dst: str, port: int | None, proto: str = "TCP") -> Decision:
    policies = load_policies([str(POLICIES / f) for f in files]).policies
    return compile_policies(policies, INVENTORY).decide(ENDPOINTS[src], ENDPOINTS[dst], port, proto)


# (id, policy files, src, dst, port, proto, verdict, denied_by, allowing rules)
CASES = [
    # -- no policy: everything open
    ("no-policy-open", [], "shop/web", "shop/api", 9090, "TCP", "allowed", None, ()),
    # -- empty vs missing
    (
        "deny-all-ingress",
        ["deny-all-ingress.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "deny-all-ingress-leaves-egress-open",
        ["deny-all-ingress.yaml"],
        "shop/web",
        "world",
        443,
        "TCP",
        "allowed",
        None,
        (),
    ),
    (
        "deny-all-ingress-other-namespace-open",
        ["deny-all-ingress.yaml"],
        "shop/web",
        "other/api",
        9090,
        "TCP",
        "allowed",
        None,
        (),
    ),
    (
        "empty-ingress-rule-allows-all",
        ["empty-ingress-rule.yaml"],
        "world",
        "shop/api",
        1234,
        "UDP",
        "allowed",
        None,
        ("shop/empty-ingress-rule#ingress[0]",),
    ),
    (
        "missing-ingress-list-denies",
        ["missing-ingress-list.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "empty-ingress-list-denies",
        ["empty-ingress-list.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "deny-all-egress",
        ["deny-all-egress.yaml"],
        "shop/web",
        "world",
        443,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "deny-all-egress-and-ingress-both",
        ["deny-all-egress.yaml", "deny-all-ingress.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "both",
        (),
    ),
    # -- policyTypes defaulting
    (
        "default-types-with-egress-rules-isolate-ingress",
        ["egress-rules-default-types.yaml"],
        "shop/api",
        "shop/web",
        8080,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "default-types-egress-rule-allows",
        ["egress-rules-default-types.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/egress-rules-default-types#egress[0]",),
    ),
    (
        "default-types-egress-rule-denies-world",
        ["egress-rules-default-types.yaml"],
        "shop/web",
        "world",
        443,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "default-types-empty-egress-list-egress-open",
        ["empty-egress-list-default-types.yaml"],
        "shop/web",
        "world",
        443,
        "TCP",
        "allowed",
        None,
        (),
    ),
    (
        "default-types-empty-egress-list-ingress-denied",
        ["empty-egress-list-default-types.yaml"],
        "shop/api",
        "shop/web",
        8080,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "egress-only-type-ignores-ingress-rules",
        ["egress-only-type-ignores-ingress.yaml"],
        "other/client",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        (),
    ),
    (
        "types-reversed-still-isolate-ingress",
        ["policy-types-reversed.yaml"],
        "shop/api",
        "shop/web",
        8080,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "types-reversed-egress-to-own-namespace",
        ["policy-types-reversed.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/types-reversed#egress[0]",),
    ),
    (
        "empty-pod-selector-peer-only-own-namespace",
        ["policy-types-reversed.yaml"],
        "shop/web",
        "other/api",
        9090,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    # -- peers
    (
        "pod-selector-same-namespace",
        ["pod-selector-peer.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/pod-selector-peer#ingress[0]",),
    ),
    (
        "pod-selector-not-other-namespace",
        ["pod-selector-peer.yaml"],
        "other/client",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "pod-selector-never-external",
        ["pod-selector-peer.yaml"],
        "world",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "namespace-selector-all-pods",
        ["namespace-selector-peer.yaml"],
        "other/api",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/namespace-selector-peer#ingress[0]",),
    ),
    (
        "namespace-selector-not-own-namespace",
        ["namespace-selector-peer.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "ns-and-pod-one-peer-both-match",
        ["namespace-and-pod-selector-one-peer.yaml"],
        "other/client",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/namespace-and-pod-selector-one-peer#ingress[0]",),
    ),
    (
        "ns-and-pod-one-peer-is-and",
        ["namespace-and-pod-selector-one-peer.yaml"],
        "other/api",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "ns-or-pod-two-peers-ns",
        ["namespace-or-pod-selector-two-peers.yaml"],
        "other/api",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/namespace-or-pod-selector-two-peers#ingress[0]",),
    ),
    (
        "ns-or-pod-two-peers-pod-only-own-ns",
        ["namespace-or-pod-selector-two-peers.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "metadata-name-label-always-present",
        ["metadata-name-namespace-selector.yaml"],
        "monitoring/prom",
        "shop/api",
        9100,
        "TCP",
        "allowed",
        None,
        ("shop/metadata-name-namespace-selector#ingress[0]",),
    ),
    (
        "empty-namespace-selector-all-pods",
        ["empty-namespace-selector.yaml"],
        "monitoring/prom",
        "shop/api",
        9100,
        "TCP",
        "allowed",
        None,
        ("shop/empty-namespace-selector#ingress[0]",),
    ),
    (
        "empty-namespace-selector-not-external",
        ["empty-namespace-selector.yaml"],
        "world",
        "shop/api",
        9100,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "empty-namespace-selector-not-host",
        ["empty-namespace-selector.yaml"],
        "node",
        "shop/api",
        9100,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "host-network-pod-is-host",
        ["empty-namespace-selector.yaml"],
        "kube-system/agent",
        "shop/api",
        9100,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "empty-from-list-allows-external",
        ["empty-from-list.yaml"],
        "world",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/empty-from-list#ingress[0]",),
    ),
    (
        "empty-from-list-port-still-applies",
        ["empty-from-list.yaml"],
        "world",
        "shop/api",
        9100,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    # -- ipBlock
    (
        "ipblock-matches-pod-ip",
        ["ipblock-except.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/ipblock-except#ingress[0]",),
    ),
    (
        "ipblock-except-excludes",
        ["ipblock-except.yaml"],
        "other/client",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "ipblock-outside-cidr",
        ["ipblock-except.yaml"],
        "world",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "ipblock-host-bits-masked-world",
        ["ipblock-host-bits.yaml"],
        "shop/web",
        "world",
        53,
        "UDP",
        "allowed",
        None,
        ("shop/ipblock-host-bits#egress[0]",),
    ),
    (
        "ipblock-host-bits-masked-pod",
        ["ipblock-host-bits.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/ipblock-host-bits#egress[0]",),
    ),
    (
        "ipblock-host-bits-outside",
        ["ipblock-host-bits.yaml"],
        "shop/web",
        "world-far",
        443,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "ipblock-ipv6",
        ["ipblock-ipv6-except.yaml"],
        "shop/web",
        "world6",
        443,
        "TCP",
        "allowed",
        None,
        ("shop/ipblock-ipv6-except#egress[0]",),
    ),
    (
        "ipblock-ipv6-except",
        ["ipblock-ipv6-except.yaml"],
        "shop/web",
        "world6-except",
        443,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "ipblock-ipv6-never-matches-ipv4",
        ["ipblock-ipv6-except.yaml"],
        "shop/web",
        "world",
        443,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    # -- ports and protocols
    (
        "protocol-only-any-udp-port",
        ["protocol-only-port.yaml"],
        "shop/web",
        "shop/api",
        12345,
        "UDP",
        "allowed",
        None,
        ("shop/protocol-only-port#ingress[0]",),
    ),
    (
        "protocol-only-isolates-tcp",
        ["protocol-only-port.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "udp-only-rule-udp-allowed",
        ["udp-only-rule.yaml"],
        "shop/web",
        "shop/api",
        53,
        "UDP",
        "allowed",
        None,
        ("shop/udp-only-rule#ingress[0]",),
    ),
    (
        "udp-only-rule-isolates-tcp",
        ["udp-only-rule.yaml"],
        "shop/web",
        "shop/api",
        53,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "protocol-case-insensitive-flow",
        ["udp-only-rule.yaml"],
        "shop/web",
        "shop/api",
        53,
        "udp",
        "allowed",
        None,
        ("shop/udp-only-rule#ingress[0]",),
    ),
    (
        "sctp-allowed",
        ["sctp-port.yaml"],
        "shop/web",
        "shop/api",
        7777,
        "SCTP",
        "allowed",
        None,
        ("shop/sctp-port#ingress[0]",),
    ),
    (
        "sctp-rule-isolates-tcp",
        ["sctp-port.yaml"],
        "shop/web",
        "shop/api",
        7777,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "default-protocol-is-tcp",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        32000,
        "UDP",
        "denied",
        "ingress",
        (),
    ),
    (
        "end-port-first",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        32000,
        "TCP",
        "allowed",
        None,
        ("shop/end-port-range#ingress[0]",),
    ),
    (
        "end-port-inclusive",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        32768,
        "TCP",
        "allowed",
        None,
        ("shop/end-port-range#ingress[0]",),
    ),
    (
        "end-port-above",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        32769,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "end-port-below",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        31999,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "port-none-denied-by-port-rule",
        ["end-port-range.yaml"],
        "shop/web",
        "shop/api",
        None,
        "ICMPv4",
        "denied",
        "ingress",
        (),
    ),
    (
        "port-none-allowed-by-all-ports-rule",
        ["empty-ingress-rule.yaml"],
        "shop/web",
        "shop/api",
        None,
        "ICMPv4",
        "allowed",
        None,
        ("shop/empty-ingress-rule#ingress[0]",),
    ),
    (
        "named-port-ingress",
        ["named-port-ingress.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/named-port-ingress#ingress[0]",),
    ),
    (
        "named-port-ingress-other-number",
        ["named-port-ingress.yaml"],
        "shop/web",
        "shop/api",
        9100,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "named-port-egress-on-destination",
        ["named-port-egress.yaml"],
        "shop/web",
        "other/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/named-port-egress#egress[0]",),
    ),
    (
        "named-port-egress-destination-decides",
        ["named-port-egress.yaml"],
        "shop/web",
        "shop/db",
        9090,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "named-port-egress-other-pod-same-name",
        ["named-port-egress.yaml"],
        "shop/web",
        "shop/db",
        5432,
        "TCP",
        "allowed",
        None,
        ("shop/named-port-egress#egress[0]",),
    ),
    (
        "named-port-never-external",
        ["named-port-egress.yaml"],
        "shop/web",
        "world",
        9090,
        "TCP",
        "denied",
        "egress",
        (),
    ),
    (
        "named-port-protocol-must-match",
        ["named-port-protocol-mismatch.yaml"],
        "shop/web",
        "shop/api",
        53,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "named-port-protocol-must-match-udp",
        ["named-port-protocol-mismatch.yaml"],
        "shop/web",
        "shop/api",
        53,
        "UDP",
        "denied",
        "ingress",
        (),
    ),
    # -- selectors
    (
        "notin-doesnotexist-select-missing-key",
        ["match-expressions-notin.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "notin-excludes-matching-value",
        ["match-expressions-notin.yaml"],
        "shop/web",
        "shop/db",
        5432,
        "TCP",
        "allowed",
        None,
        (),
    ),
    (
        "null-match-labels-selects-all",
        ["null-match-labels.yaml"],
        "other/client",
        "shop/db",
        5432,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "null-match-labels-rule",
        ["null-match-labels.yaml"],
        "shop/web",
        "shop/db",
        5432,
        "TCP",
        "allowed",
        None,
        ("shop/null-match-labels#ingress[0]",),
    ),
    # -- union of policies
    (
        "additive-first-policy",
        ["additive-two-policies.yaml"],
        "shop/web",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/allow-from-web#ingress[0]",),
    ),
    (
        "additive-second-policy",
        ["additive-two-policies.yaml"],
        "other/client",
        "shop/api",
        9090,
        "TCP",
        "allowed",
        None,
        ("shop/allow-from-client#ingress[0]",),
    ),
    (
        "additive-neither",
        ["additive-two-policies.yaml"],
        "monitoring/prom",
        "shop/api",
        9090,
        "TCP",
        "denied",
        "ingress",
        (),
    ),
    (
        "union-with-allow-all",
        ["deny-all-ingress.yaml", "empty-ingress-rule.yaml"],
        "world",
        "shop/web",
        8080,
        "TCP",
        "allowed",
        None,
        ("shop/empty-ingress-rule#ingress[0]",),
    ),
]


@pytest.mark.parametrize(
    ("files", "src", "dst", "port", "proto", "verdict", "denied_by", "rules"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_semantics_table(files, src, dst, port, proto, verdict, denied_by, rules):
    d = decide(files, src, dst, port, proto)
    assert (d.verdict, d.denied_by) == (verdict, denied_by)
    assert d.ingress_rules + d.egress_rules == rules


def test_decision_names_selecting_policies_per_direction():
    d = decide(["deny-all-egress.yaml", "missing-ingress-list.yaml"], "shop/web", "shop/api", 1)
    assert d.egress_policies == ("shop/deny-all-egress",)
    assert d.ingress_policies == ("shop/missing-ingress-list",)
    assert d.egress_isolated
    assert d.ingress_isolated
    assert d.denied_by == "both"


def test_unknown_endpoint_gives_unknown_never_a_guess():
    d = decide(["empty-ingress-rule.yaml"], "gone", "shop/api", 9090)
    assert d.verdict == "unknown"
    assert d.denied_by is None
    assert "source" in (d.reason or "")
    d = decide([], "shop/web", "gone", 9090)
    assert d.verdict == "unknown"


CONNECTIVITY_SOURCES = [
    "shop/web",
    "shop/db",
    "other/client",
    "other/api",
    "monitoring/prom",
    "world",
    "node",
]


def test_connectivity_matrix_default_plus_exceptions():
    """additive-two-policies: default verdict into shop/api:9090 is denied, two exceptions."""
    policies = load_policies([str(POLICIES / "additive-two-policies.yaml")]).policies
    ps = compile_policies(policies, INVENTORY)
    exceptions = {"shop/web": "allowed", "other/client": "allowed"}
    for src in CONNECTIVITY_SOURCES:
        got = ps.decide(ENDPOINTS[src], ENDPOINTS["shop/api"], 9090, "TCP").verdict
        assert got == exceptions.get(src, "denied"), src
    # Other destinations stay open for every source.
    for src in CONNECTIVITY_SOURCES:
        assert ps.decide(ENDPOINTS[src], ENDPOINTS["other/api"], 9090, "TCP").is_allowed


def test_decide_many_matches_decide_and_caches():
    policies = load_policies([str(POLICIES)]).policies
    ps = compile_policies(policies, INVENTORY)
    tuples = [
        (ENDPOINTS[s], ENDPOINTS[d], p, "TCP")
        for s in CONNECTIVITY_SOURCES
        for d in ("shop/api", "shop/web", "world")
        for p in (53, 9090)
    ] * 3
    fresh = compile_policies(policies, INVENTORY)
    assert ps.decide_many(tuples) == [fresh.decide(*t) for t in tuples]
    assert len(ps._decisions) == len(set(tuples))


def test_selected_and_uncovered_pods():
    policies = load_policies(
        [str(POLICIES / "missing-ingress-list.yaml"), str(POLICIES / "named-port-egress.yaml")]
    ).policies
    ps = compile_policies(policies, INVENTORY)
    assert ps.selected_pods("ingress") == ("shop/api",)
    assert ps.isolated_pods("egress") == ("shop/web",)
    assert ps.uncovered_pods("ingress") == (
        "monitoring/prom",
        "other/api",
        "other/client",
        "shop/db",
        "shop/web",
    )
    assert "kube-system/agent" not in ps.uncovered_pods("egress")


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("10.0.1.11", "pod"),
        ("10.1.0.1", "host"),
        ("10.0.9.9", "unknown"),
        ("8.8.8.8", "world"),
        ("not-an-ip", "unknown"),
        ("2001:db8::1", "world"),
    ],
)
def test_endpoint_for_ip(ip, kind):
    assert endpoint_for_ip(ip, INVENTORY).kind == kind


def test_endpoint_for_pod_fields():
    ep = ENDPOINTS["other/api"]
    assert ep.kind == "pod"
    assert ep.namespace == "other"
    assert ep.ip == "10.0.2.11"
    assert ep.namespace_label_map == {"team": "other", "kubernetes.io/metadata.name": "other"}
    assert ep.ports == API_PORTS
    assert endpoint_for_ip("10.0.2.11", INVENTORY) == ep


def test_ip_reused_by_two_live_pods_is_unknown():
    inv = Inventory(pods=(_pod("a", "p1", "10.0.0.5", {}), _pod("a", "p2", "10.0.0.5", {})))
    assert endpoint_for_ip("10.0.0.5", inv).kind == "unknown"


def test_terminated_pod_ip_is_not_attributed():
    dead = Pod("a", "old", {"app": "x"}, ips=("10.0.0.6",), phase="Failed")
    assert endpoint_for_ip("10.0.0.6", Inventory(pods=(dead,))).kind == "world"


def test_endpoint_rejects_bad_kind_and_pod_without_namespace():
    with pytest.raises(ValueError, match="kind"):
        Endpoint("service")
    with pytest.raises(ValueError, match="namespace"):
        Endpoint("pod")


def test_equal_endpoints_hash_equal_regardless_of_name():
    a = pod_endpoint("shop", {"app": "web"}, name="shop/web-1")
    b = pod_endpoint("shop", {"app": "web"}, name="shop/web-2")
    assert a == b
    assert hash(a) == hash(b)
