"""Inventory validation at read time: the API's name, label, IP and port rules.

Each bad object must give exactly one line, ``file: item N (Kind ns/name): field:
reason``, as an InputError (exit 2 on the command line), never another exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.errors import InputError
from recommender.inventory.files import parse_inventory_items, read_inventory
from recommender.inventory.manifests import inventory_from_manifests
from recommender.semantics.validate import is_dns1123_label, is_dns1123_subdomain, is_label_key
from tests.conftest import FIXTURES

DEFAULTS = FIXTURES / "inventory" / "api-defaults.json"
LABEL_VALUE = (
    "<= 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric (or empty)"
)


def _pod(meta: dict | None = None, **extra: object) -> dict:
    return {
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop", **(meta or {})},
        **extra,
    }


def _svc(**spec: object) -> dict:
    return {"kind": "Service", "metadata": {"name": "web", "namespace": "shop"}, "spec": spec}


def _slice(**fields: object) -> dict:
    return {
        "kind": "EndpointSlice",
        "metadata": {"name": "e", "namespace": "shop"},
        "addressType": "IPv4",
        **fields,
    }


CASES = [
    # The user's report: values the API would never accept.
    (
        _pod({"namespace": 'a"b'}),
        """(Pod 'a"b'/web): metadata.namespace: 'a"b' is not a DNS-1123 label""",
    ),
    (
        _pod({"namespace": "a\nb"}),
        r"(Pod 'a\nb'/web): metadata.namespace: 'a\nb' is not a DNS-1123 label",
    ),
    (
        _pod({"namespace": "../x"}),
        "(Pod '../x'/web): metadata.namespace: '../x' is not a DNS-1123 label",
    ),
    (
        _pod({"namespace": "Shop"}),
        "(Pod Shop/web): metadata.namespace: 'Shop' is not a DNS-1123 label",
    ),
    (
        _pod({"namespace": "n" * 64}),
        f"(Pod {'n' * 64}/web): metadata.namespace: '{'n' * 59}... is not a DNS-1123 label",
    ),
    (
        _pod({"labels": {"app": 'a"b'}}),
        f"""(Pod shop/web): metadata.labels['app']: invalid label value 'a"b': {LABEL_VALUE}""",
    ),
    (
        _pod({"labels": {"app": "a\nb"}}),
        rf"(Pod shop/web): metadata.labels['app']: invalid label value 'a\nb': {LABEL_VALUE}",
    ),
    (
        _pod({"labels": {"app": "web\n"}}),
        rf"(Pod shop/web): metadata.labels['app']: invalid label value 'web\n': {LABEL_VALUE}",
    ),
    (
        _pod({"labels": {"app": "v" * 64}}),
        f"(Pod shop/web): metadata.labels['app']: invalid label value "
        f"'{'v' * 59}...: {LABEL_VALUE}",
    ),
    (
        _pod({"labels": {"a/b/c": "x"}}),
        "(Pod shop/web): metadata.labels['a/b/c']: invalid label key",
    ),
    (
        _pod({"labels": {"app": 1}}),
        "(Pod shop/web): metadata.labels['app']: label values must be strings, got 1",
    ),
    (
        _pod({"name": "Web_1"}),
        "(Pod shop/Web_1): metadata.name: 'Web_1' is not a DNS-1123 subdomain",
    ),
    # Pods
    (
        _pod(status={"podIP": "10.0.0.300"}),
        "(Pod shop/web): status.podIP/podIPs[0]: '10.0.0.300' is not an IP address",
    ),
    (
        _pod(status={"podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "nope"}]}),
        "(Pod shop/web): status.podIPs[1].ip: 'nope' is not an IP address",
    ),
    (
        _pod(status={"hostIP": "fe80::1%eth0"}),
        "(Pod shop/web): status.hostIP/hostIPs[0]: 'fe80::1%eth0' is not an IP address",
    ),
    (
        _pod(spec={"hostNetwork": "yes"}),
        "(Pod shop/web): spec.hostNetwork: expected true or false, got 'yes'",
    ),
    (
        _pod(spec={"containers": [{"ports": [{"containerPort": 70000}]}]}),
        "(Pod shop/web): spec.containers[0].ports[0].containerPort: expected a port number "
        "1-65535, got 70000",
    ),
    (
        _pod(spec={"containers": [{"ports": [{"containerPort": 80, "protocol": "HTTP"}]}]}),
        "(Pod shop/web): spec.containers[0].ports[0].protocol: 'HTTP' is not TCP, UDP or SCTP",
    ),
    (
        _pod(spec={"containers": [{"ports": [{"containerPort": 80, "name": "Web"}]}]}),
        "(Pod shop/web): spec.containers[0].ports[0].name: 'Web' is not an IANA_SVC_NAME",
    ),
    (
        _pod(spec={"nodeName": "Node_1"}),
        "(Pod shop/web): spec.nodeName: 'Node_1' is not a DNS-1123 subdomain",
    ),
    (_pod(spec=[]), "(Pod shop/web): spec: expected an object, got []"),
    # Namespaces, Services
    (
        {"kind": "Namespace", "metadata": {"name": "a.b"}},
        "(Namespace a.b): metadata.name: 'a.b' is not a DNS-1123 label",
    ),
    (
        {"kind": "Service", "metadata": {"name": "web.v1", "namespace": "shop"}},
        "(Service shop/web.v1): metadata.name: 'web.v1' is not a DNS-1123 label",
    ),
    (
        _svc(type="Ingress"),
        "(Service shop/web): spec.type: 'Ingress' is not one of ClusterIP, NodePort, "
        "LoadBalancer, ExternalName",
    ),
    (
        _svc(ports=[{"port": 80, "targetPort": "HTTP"}]),
        "(Service shop/web): spec.ports[0].targetPort: "
        "'HTTP' is not a port number or IANA_SVC_NAME",
    ),
    (
        _svc(ports=[{"port": 80, "targetPort": 65536}]),
        "(Service shop/web): spec.ports[0].targetPort: expected a port number 1-65535, got 65536",
    ),
    (
        _svc(ports=[{"port": 0}]),
        "(Service shop/web): spec.ports[0].port: expected a port number 1-65535, got 0",
    ),
    (
        _svc(ports=[{"port": 53, "protocol": "ICMP"}]),
        "(Service shop/web): spec.ports[0].protocol: 'ICMP' is not TCP, UDP or SCTP",
    ),
    (
        _svc(clusterIP="10.96.0.x"),
        "(Service shop/web): spec.clusterIP: '10.96.0.x' is not an IP address",
    ),
    (
        _svc(selector={"app": "a b"}),
        f"(Service shop/web): spec.selector['app']: invalid label value 'a b': {LABEL_VALUE}",
    ),
    # EndpointSlices, Nodes, owners, policies
    (
        {**_slice(), "addressType": None},
        "(EndpointSlice shop/e): addressType: None is not one of IPv4, IPv6, FQDN",
    ),
    (
        _slice(endpoints=[{"addresses": ["fd00::1"]}]),
        "(EndpointSlice shop/e): endpoints[0].addresses[0]: 'fd00::1' is not an IPv4 address",
    ),
    (
        _slice(ports=[{"port": 80, "protocol": ""}]),
        "(EndpointSlice shop/e): ports[0].protocol: '' is not TCP, UDP or SCTP",
    ),
    (
        _slice(ports=[{"port": 80, "name": "Web"}]),
        "(EndpointSlice shop/e): ports[0].name: 'Web' is not empty or a DNS-1123 label",
    ),
    (
        {
            "kind": "Node",
            "metadata": {"name": "n"},
            "status": {"addresses": [{"type": "InternalIP", "address": "node-1"}]},
        },
        "(Node n): status.addresses[0].address: 'node-1' is not an IP address",
    ),
    (
        {"kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.0.0"}},
        "(Node n): spec.podCIDR/podCIDRs[0]: '10.244.0.0' is not a CIDR",
    ),
    (
        {"kind": "ReplicaSet", "metadata": {"name": "../rs", "namespace": "shop"}},
        "(ReplicaSet shop/'../rs'): metadata.name: '../rs' is not a DNS-1123 subdomain",
    ),
    (
        {"kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": 'a"b'}},
        """(NetworkPolicy 'a"b'/p): metadata.namespace: 'a"b' is not a DNS-1123 label""",
    ),
]


@pytest.mark.parametrize(("obj", "expected"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_invalid_object_is_one_line_naming_the_item(obj: dict, expected: str) -> None:
    with pytest.raises(InputError) as err:
        parse_inventory_items([{"kind": "Namespace", "metadata": {"name": "ok"}}, obj], "inv.json")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"inv.json: item 1 {expected}")


def test_valid_edge_cases_are_accepted() -> None:
    objs = [
        _pod(
            {
                "labels": {"example.com/app": "", "App_Name": "Web.v1-x", "k": "v" * 63},
                "name": "web.v1",
            },
            status={"podIP": "010.0.0.1"},
        ),  # ParseIPSloppy reads leading zeros as decimal
        _svc(clusterIP="None", ports=[{"port": 80, "targetPort": "http-web"}]),
        {"kind": "Service", "metadata": {"name": "9lives", "namespace": "shop"}},  # relaxed rule
        _slice(addressType="FQDN", endpoints=[{"addresses": ["db.example.com"]}]),
        {
            "kind": "Node",
            "metadata": {"name": "node.example.com"},
            "status": {"addresses": [{"type": "Hostname", "address": "node.example.com"}]},
        },
    ]
    inv = parse_inventory_items(objs, "inv.json")
    assert [p.name for p in inv.pods] == ["web.v1"]
    assert {s.name for s in inv.services} == {"web", "9lives"}


def test_several_problems_report_the_first_and_count_the_rest() -> None:
    objs = [_pod({"namespace": "A"}), _pod({"name": "b", "labels": {"x": "-"}})]
    with pytest.raises(InputError) as err:
        parse_inventory_items(objs, "inv.json")
    assert str(err.value) == (
        "inv.json: item 0 (Pod A/web): metadata.namespace: 'A' is not a "
        "DNS-1123 label (1 more invalid field in the inventory)"
    )


def test_file_reader_names_file_and_item(tmp_path: Path) -> None:
    doc = json.loads(DEFAULTS.read_text())
    doc["items"][4]["metadata"]["labels"]["app"] = "a\nb"
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError) as err:
        read_inventory([path])
    assert str(err.value).startswith(
        f"{path}: item 4 (Pod shop/web-5d8f9c-abcde): metadata.labels['app']: invalid label value"
    )


def test_yaml_document_is_named(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text(
        "kind: Namespace\nmetadata: {name: ok}\n---\nkind: Namespace\nmetadata: {name: Bad}\n"
    )
    with pytest.raises(InputError, match=r"inv.yaml: document 2 \(Namespace Bad\): metadata.name"):
        read_inventory([path])


def test_manifest_workload_with_bad_name_is_named(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: '../web', namespace: shop}\n"
        "spec: {template: {metadata: {labels: {app: web}}, spec: {containers: []}}}\n"
    )
    with pytest.raises(InputError) as err:
        inventory_from_manifests([tmp_path])
    assert str(err.value) == (
        f"{tmp_path / 'd.yaml'}: (Deployment shop/'../web'): metadata.name: "
        "'../web' is not a DNS-1123 subdomain (<= 253 lowercase "
        "alphanumerics, '-' or '.')"
    )


def test_manifest_template_labels_are_checked_on_the_pods(tmp_path: Path) -> None:
    (tmp_path / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n"
        "spec: {template: {metadata: {labels: {app: 'a\"b'}}, spec: {containers: []}}}\n"
    )
    with pytest.raises(
        InputError,
        match=r"\(Deployment web\): pod web-\S+ \(Pod shop/web-\S+\): "
        r"metadata.labels\['app'\]: invalid label value",
    ):
        inventory_from_manifests([tmp_path])


@pytest.mark.parametrize("text", ["shop\n", "a\nb", "\nshop"])
def test_shared_validators_refuse_newlines(text: str) -> None:
    # ``$`` matches before a trailing newline; the shared predicates use fullmatch.
    assert not is_dns1123_label(text)
    assert not is_dns1123_subdomain(text)
    assert not is_label_key(text)
