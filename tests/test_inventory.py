"""Inventory files -> model objects: shapes, owners, namespaces, ports, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.errors import InputError, OutputExistsError
from recommender.inventory.files import (
    load_inventory,
    parse_inventory,
    parse_inventory_items,
    read_inventory,
    render_inventory_list,
    write_inventory_json,
)
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import ContainerPort
from tests.conftest import FIXTURES, SAMPLES

K8S = SAMPLES / "k8s-inventory"
OLD_PODS = K8S / "describecluster-2021-pods.json"
OLD_SERVICES = K8S / "describecluster-2021-services.json"
MODERN_PODS = K8S / "sre-ai-agent-2025-sample-pod-list.json"
INV = FIXTURES / "inventory"


def _pod(
    name: str,
    ns: str = "shop",
    owner: tuple[str, str] | None = None,
    labels: dict[str, str] | None = None,
    **extra: object,
) -> dict[str, object]:
    """A minimal raw pod, as kubectl prints it."""
    meta: dict[str, object] = {"name": name, "namespace": ns, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1], "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, **extra}


# ---------------------------------------------------------------------------
# Real samples
# ---------------------------------------------------------------------------


def test_2021_dump_loads_with_owners_and_ips() -> None:
    load = load_inventory([OLD_PODS, OLD_SERVICES])
    inv = load.inventory
    assert len(inv.pods) == 158
    assert len(inv.services) == 143
    pods = {p.key: p for p in inv.pods}
    # No status.podIPs in 2021: the IP comes from status.podIP.
    assert pods["dashboard/dashboard-69f4bf9878-7cfvm"].ips == ("10.244.206.185",)
    assert pods["dashboard/dashboard-69f4bf9878-7cfvm"].workload == "deployment/dashboard"
    assert pods["kafka/zookeeper2-6gjsv"].workload == "replicationcontroller/zookeeper2"
    assert pods["udl/dfa-loader-0"].workload == "statefulset/dfa-loader"
    assert pods["kube-system/kube-proxy-d4z2n"].workload == "daemonset/kube-proxy"
    # Static control-plane pods in this dump have no ownerReferences: bare pods.
    assert pods["kube-system/etcd-epm-master"].owner_kind is None
    assert pods["kube-system/etcd-epm-master"].workload == "pod/etcd-epm-master"
    assert sum(p.host_network for p in inv.pods) == 14
    failed = [p for p in inv.pods if p.phase == "Failed"]
    assert [p.key for p in failed] == ["nifi/nifi-56885fd96b-4jhmz"]
    assert failed[0].ips == ()


def test_2021_dump_owner_kinds() -> None:
    kinds: dict[str | None, int] = {}
    for pod in read_inventory([OLD_PODS]).pods:
        kinds[pod.owner_kind] = kinds.get(pod.owner_kind, 0) + 1
    # 126 ReplicaSet owners all carry a matching pod-template-hash -> Deployments.
    assert kinds == {
        "Deployment": 126,
        "StatefulSet": 15,
        "DaemonSet": 9,
        "ReplicationController": 4,
        None: 4,
    }


def test_2021_dump_synthesises_every_namespace() -> None:
    load = load_inventory([OLD_PODS, OLD_SERVICES])
    names = [n.name for n in load.inventory.namespaces]
    assert names == sorted(names)
    # superset and default only hold services; they are referenced too.
    assert {"kube-system", "superset", "default"} <= set(names)
    assert load.synthesized_namespaces == tuple(names)
    assert all(n.labels == {NAMESPACE_NAME_LABEL: n.name} for n in load.inventory.namespaces)
    assert any("20 namespaces referenced" in w for w in load.warnings)


def test_modern_dump_pod_ips_index_labels_and_owners() -> None:
    inv = read_inventory([str(MODERN_PODS)])
    pods = {p.name: p for p in inv.pods}
    webui = pods["open-webui-0"]
    assert webui.ips == ("10.1.7.10",)
    assert (webui.owner_kind, webui.owner_name) == ("StatefulSet", "open-webui")
    assert webui.labels["apps.kubernetes.io/pod-index"] == "0"
    assert webui.container_ports == (ContainerPort(8080, "TCP", "http"),)
    ollama = pods["open-webui-ollama-78f7f9765c-jm7dw"]
    assert (ollama.owner_kind, ollama.owner_name) == ("Deployment", "open-webui-ollama")
    assert inv.sources == (str(MODERN_PODS),)


# ---------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------


def test_mixed_list_every_kind() -> None:
    load = load_inventory([INV / "mixed-list.json"])
    inv = load.inventory
    assert [p.key for p in inv.pods] == [
        "batch/report-29312640-x7k2p",
        "kube-system/kube-apiserver-node-a",
        "shop/web-7c9d8-abcde",
    ]
    assert load.skipped_kinds == {"ConfigMap": 2, "Secret": 1}
    assert "skipped 3 objects of unused kinds: ConfigMap x2, Secret x1" in load.warnings
    # The dumped namespace gains kubernetes.io/metadata.name; the others are synthesised.
    assert inv.namespaces[-1].name == "shop"
    assert inv.namespaces[-1].labels == {"team": "payments", NAMESPACE_NAME_LABEL: "shop"}
    assert load.synthesized_namespaces == ("batch", "kube-system")
    assert [p["metadata"]["name"] for p in inv.network_policies] == ["deny-all"]
    node = inv.nodes[0]
    assert node.addresses == ("192.168.0.10", "node-a")
    assert node.pod_cidrs == ("10.244.1.0/24", "fd00:10:244:1::/64")


def test_mixed_list_pod_fields() -> None:
    pods = {p.name: p for p in read_inventory([INV / "mixed-list.json"]).pods}
    web = pods["web-7c9d8-abcde"]
    # The ReplicaSet object is present: follow it even though the hash label differs.
    assert (web.owner_kind, web.owner_name) == ("Deployment", "web")
    assert web.ips == ("10.244.1.5", "fd00:10:244::5")
    # Sidecar (restartPolicy: Always) ports count; a plain init container's do not.
    assert web.container_ports == (
        ContainerPort(8080, "TCP", "http"),
        ContainerPort(15001, "TCP", "envoy"),
    )
    assert (web.service_account, web.node, web.host_ip) == ("web", "node-a", "192.168.0.10")
    assert web.created == "2026-01-01T00:00:00Z"
    job_pod = pods["report-29312640-x7k2p"]
    assert (job_pod.owner_kind, job_pod.owner_name) == ("CronJob", "report")
    assert job_pod.phase == "Succeeded"
    static = pods["kube-apiserver-node-a"]
    assert (static.owner_kind, static.owner_name, static.host_network) == ("Node", "node-a", True)


def test_mixed_list_services_and_slices() -> None:
    inv = read_inventory([INV / "mixed-list.json"])
    services = {s.name: s for s in inv.services}
    assert services["db"].cluster_ips == ()  # headless
    assert services["db"].ports[0].protocol == "TCP"
    web = services["web"]
    assert web.selector == {"app": "web"}
    assert [(p.port, p.protocol, p.target_port) for p in web.ports] == [
        (80, "TCP", "http"),
        (53, "UDP", 5353),
    ]
    (slice_,) = inv.endpoint_slices
    assert slice_.service == "web"
    assert slice_.endpoints[0].pod == "shop/web-7c9d8-abcde"
    assert slice_.endpoints[0].ready is True
    assert [p.port for p in slice_.ports] == [8080]
    assert any(
        "1 EndpointSlice ports without a port number" in w
        for w in load_inventory([INV / "mixed-list.json"]).warnings
    )


def test_typed_list_items_take_kind_from_the_list() -> None:
    inv = read_inventory([INV / "typed-pod-list.json"])
    pods = {p.name: p for p in inv.pods}
    assert (pods["api-0"].owner_kind, pods["api-0"].owner_name) == ("StatefulSet", "api")
    assert pods["api-0"].container_ports == (ContainerPort(9000, "UDP", None),)
    # An ownerReference without controller: true is not an owner.
    assert pods["debug"].owner_kind is None
    assert pods["debug"].ips == ()


def test_multi_document_yaml() -> None:
    inv = read_inventory([INV / "multi-doc.yaml"])
    (pod,) = inv.pods
    assert (pod.owner_kind, pod.owner_name) == ("Deployment", "cache")
    assert pod.container_ports == (ContainerPort(6379),)
    assert [n.name for n in inv.namespaces] == ["shop"]


def test_single_object_and_several_files_merge(tmp_path: Path) -> None:
    single = tmp_path / "pod.json"
    single.write_text(json.dumps(_pod("web-1", ns="other")))
    again = tmp_path / "again.json"
    again.write_text(json.dumps(_pod("web-1", ns="other", status={"podIP": "10.0.0.9"})))
    load = load_inventory([INV / "multi-doc.yaml", single, again])
    assert [p.key for p in load.inventory.pods] == ["other/web-1", "shop/cache-6d4b7f9c8-q2w3e"]
    assert load.inventory.pods[0].ips == ("10.0.0.9",)  # the last copy wins
    assert load.duplicates == 1
    assert load.inventory.sources == (str(INV / "multi-doc.yaml"), str(single), str(again))


# ---------------------------------------------------------------------------
# Owners
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "extra", "expected"),
    [
        (
            _pod("w-5d8f-x", owner=("ReplicaSet", "w-5d8f"), labels={"pod-template-hash": "5d8f"}),
            [],
            ("Deployment", "w"),
        ),
        (
            _pod("w-5d8f-x", owner=("ReplicaSet", "w-5d8f"), labels={"pod-template-hash": "9999"}),
            [],
            ("ReplicaSet", "w-5d8f"),
        ),
        (_pod("w-5d8f-x", owner=("ReplicaSet", "w-5d8f")), [], ("ReplicaSet", "w-5d8f")),
        (_pod("j-1-x", owner=("Job", "backup-29312640")), [], ("CronJob", "backup")),
        (_pod("j-1-x", owner=("Job", "migrate-2")), [], ("Job", "migrate-2")),
        (
            _pod("j-1-x", owner=("Job", "backup-29312640")),
            [{"kind": "Job", "metadata": {"name": "backup-29312640", "namespace": "shop"}}],
            ("Job", "backup-29312640"),
        ),
        (
            _pod("j-1-x", owner=("Job", "nightly")),
            [
                {
                    "kind": "Job",
                    "metadata": {
                        "name": "nightly",
                        "namespace": "shop",
                        "ownerReferences": [
                            {"kind": "CronJob", "name": "nightly-cron", "controller": True}
                        ],
                    },
                }
            ],
            ("CronJob", "nightly-cron"),
        ),
        (_pod("d-x", owner=("DaemonSet", "agent")), [], ("DaemonSet", "agent")),
        (_pod("bare"), [], None),
    ],
    ids=[
        "rs-hash-matches",
        "rs-hash-differs",
        "rs-no-hash-label",
        "cronjob-job-name",
        "short-digits-job",
        "job-object-without-owner",
        "job-object-owned-by-cronjob",
        "daemonset",
        "bare-pod",
    ],
)
def test_top_owner(
    pod: dict[str, object], extra: list[dict[str, object]], expected: tuple[str, str] | None
) -> None:
    (parsed,) = parse_inventory_items([*extra, pod], "test").pods
    owner = (parsed.owner_kind, parsed.owner_name) if parsed.owner_kind else None
    assert owner == expected


# ---------------------------------------------------------------------------
# Errors: one located InputError, never a traceback
# ---------------------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(InputError, match="file not found") as err:
        read_inventory([INV / "nope.json"])
    assert err.value.path == str(INV / "nope.json")


def test_bad_json_is_located() -> None:
    with pytest.raises(InputError, match="invalid JSON") as err:
        read_inventory([INV / "bad-json.json"])
    assert err.value.line == 5


def test_bad_yaml_is_located() -> None:
    with pytest.raises(InputError, match="invalid YAML") as err:
        read_inventory([INV / "bad-yaml.yaml"])
    assert err.value.line == 6


def test_item_without_name_names_the_item() -> None:
    with pytest.raises(InputError) as err:
        read_inventory([INV / "pod-without-name.json"])
    assert str(err.value) == (
        f"{INV / 'pod-without-name.json'}: item 1 (Pod): metadata.name: missing or not a string"
    )


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            _pod("a", labels={"v": 1}),  # type: ignore[dict-item]
            r"item 0 \(Pod shop/a\): metadata.labels\['v'\]: label values must be strings",
        ),
        (
            _pod("a", spec={"containers": [{"ports": [{"containerPort": 0}]}]}),
            r"spec.containers\[0\].ports\[0\].containerPort: expected a port number",
        ),
        (_pod("a", spec={"containers": {"name": "x"}}), "spec.containers: expected a list"),
        (
            {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}]}},
            r"spec.ports\[0\].port: expected a port number",
        ),
        ({"metadata": {"name": "s"}}, "object without a kind"),
        ("text", "expected a Kubernetes object"),
    ],
    ids=[
        "number-label",
        "port-zero",
        "containers-not-list",
        "string-service-port",
        "no-kind",
        "not-an-object",
    ],
)
def test_malformed_objects(obj: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_inventory_items([obj], "in.json")  # type: ignore[list-item]


def test_list_item_without_kind(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"kind": "List", "items": [{"metadata": {"name": "a"}}]}))
    with pytest.raises(InputError, match="item 0: a List item without a kind"):
        read_inventory([path])


def test_no_files() -> None:
    with pytest.raises(InputError, match="no inventory file"):
        read_inventory([])


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def test_render_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    raw = json.loads((INV / "mixed-list.json").read_text())["items"]
    raw[2]["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    first = render_inventory_list(raw)
    assert first == render_inventory_list(list(reversed(raw)))
    doc = json.loads(first)
    assert doc["kind"] == "List"
    assert [i["kind"] for i in doc["items"]] == sorted(i["kind"] for i in raw)
    assert "managedFields" not in first.decode()
    path = write_inventory_json(raw, tmp_path / "inv.json")
    assert path.read_bytes() == first
    assert read_inventory([path]) == parse_inventory(raw, str(path)).inventory
    with pytest.raises(OutputExistsError):
        write_inventory_json(raw, path)
    write_inventory_json(raw[:1], path, force=True)
    assert len(json.loads(path.read_bytes())["items"]) == 1


def test_parse_inventory_items_matches_file_reader() -> None:
    raw = json.loads(OLD_PODS.read_text())["items"]
    from_items = parse_inventory_items(raw, str(OLD_PODS))
    assert from_items == read_inventory([OLD_PODS])
