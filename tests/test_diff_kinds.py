"""netpol diff on CiliumNetworkPolicy, ClusterNetworkPolicy and mixes with NetworkPolicy.

The inventory is the lint fixture: namespace shop (web-1 of deployment/web, api-1,
db-1), other (client-1) and kube-system (coredns-1), every pod on node n1
(hostIP 192.168.0.1), no Node objects and no apiserver endpoints. Expected changes
are written from reading the policies below.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recommender.cli.parser import main
from recommender.diff import group_changes
from recommender.diff.kinds import (
    APISERVER_KEY,
    PolicyKinds,
    build_kinds_universe,
    diff_kinds,
)
from recommender.inventory.files import read_inventory
from recommender.model import Endpoint as SliceEndpoint
from recommender.model import EndpointSlice, Inventory, Node
from recommender.policy_io.policy_yaml import load_policies
from recommender.semantics import Endpoint, pod_endpoint
from recommender.semantics.cilium import CiliumPolicySet, parse_cilium_policy
from tests.conftest import FIXTURES

INVENTORY = FIXTURES / "lint" / "inventory.yaml"
ALL_PORTS = ["TCP 1-65535", "UDP 1-65535", "SCTP 1-65535"]

V1_WEB = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{protocol: TCP, port: 8080}]
  egress:
    - to: [{podSelector: {matchLabels: {app: db}}}]
      ports: [{protocol: TCP, port: 5432}]
"""

CILIUM_WEB = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web-cilium, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: api}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
  egress:
    - toEndpoints: [{matchLabels: {app: db}}]
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
"""

CILIUM_WEB_TWO = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEndpoints: [{matchLabels: {app: db}}]
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
    - toEndpoints: [{matchLabels: {app: api}}]
      toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
"""

CNP_DENY_DNS = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: deny-dns}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: shop}}}
  egress:
    - action: Deny
      to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
      protocols: [{udp: {destinationPort: {number: 53}}}]
"""

V1_CIDR = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Egress]
  egress:
    - to: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}}]
      ports: [{protocol: TCP, port: 443}]
"""

CILIUM_CIDR = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""

DNS_RULE = """    - toEndpoints:
        - matchLabels: {k8s-app: kube-dns, k8s:io.kubernetes.pod.namespace: kube-system}
      toPorts:
        - ports: [{port: "53", protocol: UDP}]
          rules: {dns: [{matchPattern: "*"}]}
"""


def _fqdn_policy(*, fqdn: bool, dns: bool) -> str:
    evidence = json.dumps({"198.51.100.7/32": ["api.example.com"]})
    body = f"""apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: shop
  annotations: {{evidence.netpol-recommender.io/fqdns: '{evidence}'}}
spec:
  endpointSelector: {{matchLabels: {{app: web}}}}
  egress:
"""
    if dns:
        body += DNS_RULE
    if fqdn:
        body += """    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""
    if not dns and not fqdn:
        body += "    - {}\n"
    return body


@pytest.fixture(scope="module")
def inv():
    return read_inventory([INVENTORY])


def _kinds(tmp_path: Path, name: str, *docs: str) -> PolicyKinds:
    path = tmp_path / f"{name}.yaml"
    path.write_text("---\n".join(docs))
    loaded = load_policies([str(path)])
    return PolicyKinds(tuple(loaded.policies), tuple(loaded.cilium), tuple(loaded.cluster))


def _rows(result) -> list[tuple[object, ...]]:
    return [
        (r["change"], r["src"], r["dst"], r["ports"], r["sides"], r.get("own_node", False))
        for r in group_changes(result.changes)
    ]


def test_cilium_equivalent_of_v1_differs_only_on_the_own_node(tmp_path, inv) -> None:
    old = _kinds(tmp_path, "old", V1_WEB)
    new = _kinds(tmp_path, "new", CILIUM_WEB)
    result = diff_kinds(old, new, inv)
    # v1: "traffic to and from the node where a Pod is running is always allowed";
    # Cilium: egress to the local host needs the host entity, ingress from it is
    # allowed (allow-localhost). Every pod runs on n1.
    assert _rows(result) == [
        ("denied", "shop/deployment/web", "host:n1", ALL_PORTS, ["egress"], True),
    ]
    assert not result.equivalent


def test_removing_one_to_endpoints_rule_names_the_rule(tmp_path, inv) -> None:
    old = _kinds(tmp_path, "old", CILIUM_WEB_TWO)
    new_doc = CILIUM_WEB_TWO.replace(
        """    - toEndpoints: [{matchLabels: {app: api}}]
      toPorts: [{ports: [{port: "9000", protocol: TCP}]}]
""",
        "",
    )
    new = _kinds(tmp_path, "new", new_doc)
    result = diff_kinds(old, new, inv)
    assert [
        (c.change, c.src, c.dst, c.protocol, c.port, c.port_last, c.sides, c.old_rules)
        for c in result.changes
    ] == [
        (
            "denied",
            "shop/deployment/web",
            "shop/pod/api-1",
            "TCP",
            9000,
            9000,
            ("egress",),
            ("shop/web#egress[1]",),
        )
    ]
    assert result.changes[0].new_policies == ("shop/web",)


def test_admin_tier_deny_added_to_v1(tmp_path, inv) -> None:
    old = _kinds(tmp_path, "old", V1_WEB)
    new = _kinds(tmp_path, "new", V1_WEB, CNP_DENY_DNS)
    result = diff_kinds(old, new, inv)
    # web's egress is isolated by its own policy already (db 5432 only): no change.
    # api-1 and db-1 have no policy: DNS over UDP was open and is now denied by
    # the Admin-tier Deny; TCP 53 stays open.
    got = [(c.src, c.dst, c.protocol, c.port, c.port_last, c.new_rules) for c in result.changes]
    deny = ("ClusterNetworkPolicy/deny-dns#egress[0]",)
    assert got == [
        ("shop/pod/api-1", "kube-system/pod/coredns-1", "UDP", 53, 53, deny),
        ("shop/pod/db-1", "kube-system/pod/coredns-1", "UDP", 53, 53, deny),
    ]
    assert {c.change for c in result.changes} == {"denied"}


def test_cidr_set_with_except_is_the_ip_block(tmp_path, inv) -> None:
    old = _kinds(tmp_path, "old", V1_CIDR)
    new = _kinds(tmp_path, "new", CILIUM_CIDR)
    uni = build_kinds_universe(old, new, inv)
    keys = {r.key for r in uni.externals}
    assert {"world:203.0.113.0/25", "world:203.0.113.128/25", "host:n1", APISERVER_KEY} <= keys
    result = diff_kinds(old, new, inv, uni)
    # Same addresses and port on both sides; only the own node differs.
    assert _rows(result) == [
        ("denied", "shop/deployment/web", "host:n1", ALL_PORTS, ["egress"], True),
    ]


def test_to_fqdns_needs_the_dns_rule(tmp_path, inv) -> None:
    dns_only = _kinds(tmp_path, "a", _fqdn_policy(fqdn=False, dns=True))
    with_fqdn = _kinds(tmp_path, "b", _fqdn_policy(fqdn=True, dns=True))
    uni = build_kinds_universe(dns_only, with_fqdn, inv)
    # The address the DNS evidence names is a probe of its own.
    assert "world:198.51.100.7/32" in {r.key for r in uni.externals}
    result = diff_kinds(dns_only, with_fqdn, inv, uni)
    assert [(c.change, c.src, c.dst, c.protocol, c.port, c.new_rules) for c in result.changes] == [
        (
            "allowed",
            "shop/deployment/web",
            "world:198.51.100.7/32",
            "TCP",
            443,
            ("shop/web#egress[1]",),
        )
    ]
    # Without rules.dns the proxy never sees the lookup: toFQDNs matches nothing.
    nothing = _kinds(tmp_path, "c", _fqdn_policy(fqdn=False, dns=False))
    no_proxy = _kinds(tmp_path, "d", _fqdn_policy(fqdn=True, dns=False))
    assert diff_kinds(nothing, no_proxy, inv).equivalent


def test_same_cilium_set_renamed_is_equivalent_and_pruned(tmp_path, inv) -> None:
    old = _kinds(tmp_path, "old", CILIUM_WEB, CNP_DENY_DNS)
    renamed = CILIUM_WEB.replace("web-cilium", "other-name")
    new = _kinds(tmp_path, "new", renamed, CNP_DENY_DNS.replace("deny-dns", "renamed"))
    result = diff_kinds(old, new, inv)
    assert result.equivalent
    assert result.changed_sides == {"egress": 0, "ingress": 0}
    assert result.pairs_evaluated == 0


def test_cli_diffs_every_kind(tmp_path, capsys) -> None:
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "old" / "web.yaml").write_text(CILIUM_WEB_TWO)
    (tmp_path / "new" / "web.yaml").write_text(CILIUM_WEB)
    (tmp_path / "new" / "cnp.yaml").write_text(CNP_DENY_DNS)
    out = tmp_path / "d.json"
    code = main(
        [
            "diff",
            str(tmp_path / "old"),
            str(tmp_path / "new"),
            "--inventory",
            str(INVENTORY),
            "--json",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "not diffed" not in captured.err
    report = json.loads(out.read_text())
    assert report["inputs"]["old_kinds"] == {"CiliumNetworkPolicy": 1}
    assert report["inputs"]["new_kinds"] == {"CiliumNetworkPolicy": 1, "ClusterNetworkPolicy": 1}
    assert "NOT EQUIVALENT" in captured.out
    rows = {(r["src"], r["dst"], tuple(r["ports"])) for r in report["changes"]}
    # web loses api:9000 (old rule #egress[1]) and gains ingress isolation (from api
    # on 8080 only); api-1 and db-1 lose UDP 53 to coredns (Admin Deny).
    assert ("shop/deployment/web", "shop/pod/api-1", ("TCP 9000",)) in rows
    assert ("shop/pod/api-1", "kube-system/pod/coredns-1", ("UDP 53",)) in rows
    assert ("shop/pod/db-1", "kube-system/pod/coredns-1", ("UDP 53",)) in rows
    assert ("other/pod/client-1", "shop/deployment/web", tuple(ALL_PORTS)) in rows


SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture(scope="module")
def sample_diff(tmp_path_factory):
    """``recommend`` on data/sample as NetworkPolicy and as Cilium, then ``diff`` of the two."""
    base = tmp_path_factory.mktemp("sample")
    flows, inventory = str(SAMPLE / "flows-train.jsonl.gz"), str(SAMPLE / "inventory.json")
    for kind in ("networkpolicy", "cilium"):
        args = ["recommend", "--flows", flows, "--inventory", inventory]
        assert main([*args, "--out", str(base / kind), "--kind", kind]) == 0
    out = base / "diff.json"
    args = ["diff", str(base / "networkpolicy"), str(base / "cilium"), "--inventory", inventory]
    assert main([*args, "--json", str(out)]) == 0
    return json.loads(out.read_text())


def test_sample_cilium_output_diffs_as_its_v1_twin(sample_diff) -> None:
    report = sample_diff
    assert report["inputs"]["new_kinds"] == {"CiliumNetworkPolicy": 33}
    assert report["summary"]["newly_allowed"] == 0
    own = [r for r in report["changes"] if r.get("own_node")]
    rest = [r for r in report["changes"] if not r.get("own_node")]
    # Every workload with policies (18: the 19 of the inventory but kube-system's
    # CoreDNS) loses egress to its own node: v1 cannot deny it, Cilium does.
    assert len({r["src"] for r in own}) == 18
    assert all(r["dst"].startswith("host:") and r["sides"] == ["egress"] for r in own)
    # The public ingress of ingress-nginx: v1's ipBlock 0.0.0.0/0 (minus the pod
    # networks) admits the node addresses 172.18.0.2-6 by address, the Cilium world
    # entity is "all endpoints outside of the cluster" only. The representative
    # replica runs on webshop-worker3, whose own host is allowed by both.
    assert sorted(r["src"] for r in rest) == [
        "cluster_infra:172.18.0.2",
        "host:webshop-control-plane",
        "host:webshop-worker",
        "host:webshop-worker2",
        "host:webshop-worker4",
    ]
    assert {(r["dst"], tuple(r["ports"])) for r in rest} == {
        ("ingress/deployment/ingress-nginx", ("TCP 80", "TCP 443"))
    }
    # The apiserver sits on the control-plane node's address: the kube-apiserver
    # entity admits it there too, so no 6443 egress changes.
    assert not any("6443" in p for r in report["changes"] for p in r["ports"])


def test_kube_apiserver_entity_covers_an_apiserver_on_a_node_address() -> None:
    # Cilium: "This entity represents both deployments of the kube-apiserver: within
    # the cluster and outside of the cluster". An apiserver on the control-plane
    # node's address is that node (host / remote-node) and kube-apiserver at once.
    inv = Inventory(
        nodes=(Node("cp", ("172.18.0.2",)), Node("w1", ("172.18.0.3",))),
        endpoint_slices=(
            EndpointSlice("default", "kubernetes", "kubernetes", (SliceEndpoint(("172.18.0.2",)),)),
        ),
    )
    doc = yaml.safe_load(
        """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api, namespace: shop}
spec:
  endpointSelector: {}
  egress:
    - toEntities: [kube-apiserver]
      toPorts: [{ports: [{port: "6443", protocol: TCP}]}]
"""
    )
    ps = CiliumPolicySet([], parse_cilium_policy(doc), inv)
    pod = pod_endpoint("shop", {"app": "x"}, ip="10.0.0.5", node="w1")
    apiserver_node = Endpoint("host", ip="172.18.0.2", node="cp")
    other_node = Endpoint("host", ip="172.18.0.3", node="w1")
    assert ps.decide(pod, apiserver_node, 6443, "TCP").is_allowed
    assert not ps.decide(pod, apiserver_node, 10250, "TCP").is_allowed
    # The pod's own node is not the apiserver: the kubelet port stays denied there.
    assert not ps.decide(pod, other_node, 6443, "TCP").is_allowed
