"""API-server defaulting of inventory objects: one test per rule (k8s_defaults).

Each rule is checked twice where it matters: on the raw object (what
``default_object`` returns, and what ``manifest_items`` writes) and on the
model the reader builds from ``tests/fixtures/inventory/api-defaults.json``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from recommender.inventory.files import read_inventory
from recommender.inventory.k8s_defaults import default_object, reconcile_ips
from recommender.inventory.manifests import manifest_items
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import ContainerPort, ServicePort
from tests.conftest import FIXTURES

DEFAULTS = FIXTURES / "inventory" / "api-defaults.json"
RAW = json.loads(DEFAULTS.read_text())["items"]


@pytest.fixture(scope="module")
def inv():
    return read_inventory([DEFAULTS])


def _one(items, name):
    return next(x for x in items if x.name == name)


# ---------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "port", "target"),
    [
        ("zero", 80, 80),
        ("empty", 81, 81),
        ("absent", 82, 82),
        ("named", 83, "http"),
        ("number", 84, 8080),
    ],
    ids=["targetPort-0", "targetPort-empty", "targetPort-absent", "named-kept", "number-kept"],
)
def test_service_target_port_defaults_to_port(inv, name, port, target) -> None:
    # "if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("")
    #  { sp.TargetPort = intstr.FromInt32(sp.Port) }"
    svc = _one(inv.services, "web")
    sp = next(p for p in svc.ports if p.name == name)
    assert (sp.port, sp.target_port) == (port, target)


def test_service_with_target_port_zero_is_read_not_refused(tmp_path: Path) -> None:
    """The reported case: one Service with ``targetPort: 0`` failed the whole inventory."""
    path = tmp_path / "svc.json"
    path.write_text(
        json.dumps(
            {
                "kind": "Service",
                "metadata": {"name": "api", "namespace": "a"},
                "spec": {"ports": [{"port": 8443, "targetPort": 0}]},
            }
        )
    )
    (svc,) = read_inventory([path]).services
    assert svc.ports == (ServicePort(port=8443, protocol="TCP", name=None, target_port=8443),)


def test_service_port_protocol_defaults_to_tcp(inv) -> None:
    # "if sp.Protocol == "" { sp.Protocol = v1.ProtocolTCP }" (absent and "")
    protocols = {p.name: p.protocol for p in _one(inv.services, "web").ports}
    assert protocols == {
        "zero": "TCP",
        "empty": "TCP",
        "absent": "TCP",
        "named": "UDP",
        "number": "TCP",
    }


def test_service_type_defaults_to_cluster_ip(inv) -> None:
    assert _one(inv.services, "web").type == "ClusterIP"
    assert _one(inv.services, "edge").type == "NodePort"


def test_service_traffic_policies_default_on_the_raw_object() -> None:
    edge = default_object(next(i for i in RAW if i["metadata"]["name"] == "edge"))
    web = default_object(next(i for i in RAW if i["kind"] == "Service"))
    # externalTrafficPolicy only for externally-accessible Services; internal for all three types.
    assert edge["spec"]["externalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in web["spec"]
    assert web["spec"]["internalTrafficPolicy"] == "Cluster"
    assert edge["spec"]["internalTrafficPolicy"] == "Cluster"


def test_external_name_service_gets_no_internal_policy() -> None:
    obj = {
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"},
    }
    assert "internalTrafficPolicy" not in default_object(obj)["spec"]


# ---------------------------------------------------------------------------
# Pod
# ---------------------------------------------------------------------------


def test_container_port_protocol_defaults_to_tcp(inv) -> None:
    pod = _one(inv.pods, "web-5d8f9c-abcde")
    assert pod.container_ports == (ContainerPort(8080, "TCP", "http"), ContainerPort(9090, "TCP"))


def test_host_network_defaults_to_false_and_host_ports_follow() -> None:
    pods = {i["metadata"]["name"]: default_object(i) for i in RAW if i["kind"] == "Pod"}
    assert pods["dual"]["spec"]["hostNetwork"] is False
    # "With host networking default all container ports to host ports."
    port = pods["mismatch"]["spec"]["containers"][0]["ports"][0]
    assert port["hostPort"] == port["containerPort"] == 9100
    assert "hostPort" not in pods["web-5d8f9c-abcde"]["spec"]["containers"][0]["ports"][0]


def test_pod_without_phase_is_pending(inv) -> None:
    # PrepareForCreate: pod.Status = api.PodStatus{Phase: api.PodPending}
    assert _one(inv.pods, "dual").phase == "Pending"
    assert _one(inv.pods, "web-5d8f9c-abcde").phase == "Running"


@pytest.mark.parametrize(
    ("pod", "ips"),
    [
        ("web-5d8f9c-abcde", ("10.244.1.5",)),  # old dump: podIP only
        ("dual", ("10.244.1.6", "fd00::6")),  # podIPs only: podIP = podIPs[0]
        ("mismatch", ("172.18.0.3",)),
    ],  # both, differing: podIP is authoritative
    ids=["podIP-only", "podIPs-only", "mismatch-podIP-wins"],
)
def test_pod_ips_reconciled(inv, pod, ips) -> None:
    assert _one(inv.pods, pod).ips == ips


def test_raw_pod_ips_agree_after_defaulting() -> None:
    for item in (i for i in RAW if i["kind"] == "Pod"):
        status = default_object(item)["status"]
        assert status["podIPs"][0]["ip"] == status["podIP"]


def test_reconcile_keeps_matching_lists_and_absent_fields() -> None:
    both = [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]
    assert reconcile_ips("10.0.0.1", both) == ("10.0.0.1", both)
    assert reconcile_ips(None, None) == (None, None)
    assert reconcile_ips("", []) == ("", [])


# ---------------------------------------------------------------------------
# Namespace, EndpointSlice, Node
# ---------------------------------------------------------------------------


def test_namespace_name_label_is_always_the_name(inv) -> None:
    # SetDefaults_Namespace: obj.Labels[v1.LabelMetadataName] = obj.Name (overwrites)
    assert _one(inv.namespaces, "shop").labels == {"team": "web", NAMESPACE_NAME_LABEL: "shop"}
    assert _one(inv.namespaces, "legacy").labels == {NAMESPACE_NAME_LABEL: "legacy"}
    raw = default_object({"kind": "Namespace", "metadata": {"name": "n"}})
    assert raw["metadata"]["labels"] == {NAMESPACE_NAME_LABEL: "n"}


def test_endpoint_slice_port_name_and_protocol_defaults(inv) -> None:
    # SetDefaults_EndpointPort: nil name -> "", nil protocol -> TCP; the model spells "" as None.
    raw = default_object(next(i for i in RAW if i["kind"] == "EndpointSlice"))
    assert raw["ports"][0] == {"port": 8080, "name": "", "protocol": "TCP"}
    (eps,) = inv.endpoint_slices
    assert eps.ports == (ServicePort(8080, "TCP", None), ServicePort(9090, "TCP", "metrics"))


def test_endpoint_slice_nil_port_means_all_ports_and_is_counted() -> None:
    from recommender.inventory.files import load_inventory

    load = load_inventory([DEFAULTS])
    assert load.portless_endpoint_ports == 1
    assert any("without a port number (all ports)" in w for w in load.warnings)


def test_endpoint_slice_explicit_empty_protocol_is_not_defaulted() -> None:
    # Only a nil pointer is defaulted; "" stays and validation refuses it.
    obj = {"kind": "EndpointSlice", "ports": [{"port": 53, "protocol": ""}]}
    assert default_object(obj)["ports"][0]["protocol"] == ""


@pytest.mark.parametrize(
    ("node", "cidrs"),
    [("node-1", ("10.244.1.0/24",)), ("node-2", ("10.244.2.0/24",))],
    ids=["podCIDR-only", "mismatch-podCIDR-wins"],
)
def test_node_pod_cidrs_reconciled(inv, node, cidrs) -> None:
    assert _one(inv.nodes, node).pod_cidrs == cidrs


# ---------------------------------------------------------------------------
# Properties of the defaulting itself, and the other paths
# ---------------------------------------------------------------------------


def test_defaulting_is_idempotent_and_does_not_modify_its_input() -> None:
    before = copy.deepcopy(RAW)
    once = [default_object(i) for i in RAW]
    assert [default_object(i) for i in once] == once
    assert before == RAW


def test_malformed_shapes_are_left_for_validation() -> None:
    obj = {"kind": "Service", "spec": {"ports": "80"}}
    assert default_object(obj)["spec"]["ports"] == "80"
    assert default_object({"kind": "Pod", "spec": [1], "status": 3}) == {
        "kind": "Pod",
        "spec": [1],
        "status": 3,
    }


def test_manifest_items_carry_api_defaults(tmp_path: Path) -> None:
    (tmp_path / "app.yaml").write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 0}]\n---\n"
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  template:\n    metadata: {labels: {app: web}}\n"
        "    spec: {containers: [{name: web, ports: [{containerPort: 80}]}]}\n"
    )
    items = manifest_items([tmp_path])
    svc = next(i for i in items if i["kind"] == "Service")
    pod = next(i for i in items if i["kind"] == "Pod")
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 80, "protocol": "TCP"}]
    assert svc["spec"]["type"] == "ClusterIP"
    assert pod["spec"]["containers"][0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert pod["spec"]["hostNetwork"] is False
    assert pod["status"]["podIPs"][0]["ip"] == pod["status"]["podIP"]
