"""Inventory files -> model objects: shapes, owners, namespaces, ports, errors."""

from __future__ import annotations

from recommender.ingest.inventory import (
    load_inventory,
    read_inventory,
)
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import ContainerPort
from tests.conftest import FIXTURES, SAMPLES

K8S = SAMPLES / "k8s-inventory"
OLD_PODS = K8S / "describecluster-2021-pods.json"
OLD_SERVICES = K8S / "describecluster-2021-services.json"
MODERN_PODS = K8S / "sre-ai-agent-2025-sample-pod-list.json"
INV = FIXTURES / "inventory"


def _pod(name: str, ns: str = "shop", owner: tuple[str, str] | None = None,
         labels: dict[str, str] | None = None, **extra: object) -> dict[str, object]:
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
    assert kinds == {"Deployment": 126, "StatefulSet": 15, "DaemonSet": 9,
                     "ReplicationController": 4, None: 4}


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
