"""The two exceptions the Kubernetes concepts page puts before any rule.

"a pod cannot block access to itself" and "traffic to and from the node where a
Pod is running is always allowed, regardless of the IP address of the Pod or the
node".
"""

from __future__ import annotations

import pytest

from recommender.model import Inventory, LabelSelector, Namespace, NetworkPolicy, Node, Pod
from recommender.semantics import Endpoint, compile_policies, endpoint_for_pod, host_endpoint

DENY_ALL = NetworkPolicy("shop", "deny-all", LabelSelector(), ("Ingress", "Egress"), (), ())
WEB = Pod("shop", "web-1", {"app": "web"}, ips=("10.244.1.10",), node="n1", host_ip="192.168.0.1")
WEB_ON_N2 = Pod(
    "shop", "web-2", {"app": "web"}, ips=("10.244.2.10",), node="n2", host_ip="192.168.0.2"
)
INV = Inventory(
    namespaces=(Namespace("shop"),),
    pods=(WEB, WEB_ON_N2),
    nodes=(
        Node("n1", ("192.168.0.1",), ("10.244.1.0/24",)),
        Node("n2", ("192.168.0.2",), ("10.244.2.0/24",)),
    ),
)


@pytest.fixture(scope="module")
def denied_everywhere():
    return compile_policies([DENY_ALL], INV)


def test_a_pod_reaches_itself_under_deny_all(denied_everywhere):
    web = endpoint_for_pod(WEB, INV)
    decision = denied_everywhere.decide(web, web, 8080, "TCP")
    assert decision.verdict == "allowed"
    assert "itself" in (decision.reason or "")


def test_another_replica_is_still_denied(denied_everywhere):
    decision = denied_everywhere.decide(
        endpoint_for_pod(WEB, INV), endpoint_for_pod(WEB_ON_N2, INV), 8080, "TCP"
    )
    assert decision.verdict == "denied"
    assert decision.denied_by == "both"


@pytest.mark.parametrize(
    ("host_ip", "expected"),
    [
        pytest.param("192.168.0.1", "allowed", id="own-node-address"),
        pytest.param("10.244.1.1", "allowed", id="own-node-router-ip-in-pod-cidr"),
        pytest.param("192.168.0.2", "denied", id="other-node-address"),
        pytest.param("10.244.2.1", "denied", id="other-node-router-ip"),
    ],
)
def test_kubelet_probe_from_the_pods_own_node_passes(denied_everywhere, host_ip, expected):
    host = host_endpoint(host_ip, INV)
    assert host.kind == "host"
    web = endpoint_for_pod(WEB, INV)
    assert denied_everywhere.decide(host, web, 8080, "TCP").verdict == expected
    # and the other way round: the pod talking to its node
    assert denied_everywhere.decide(web, host, 10250, "TCP").verdict == expected


def test_a_host_of_unknown_node_gets_no_exemption(denied_everywhere):
    host = Endpoint("host", ip="203.0.113.9")
    assert denied_everywhere.decide(host, endpoint_for_pod(WEB, INV), 80, "TCP").verdict == "denied"
