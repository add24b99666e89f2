"""Manifests -> SYNTHETIC inventory, on the public apps and a fixture of every workload kind."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

from recommender.errors import InputError
from recommender.inventory.files import read_inventory, render_inventory_list
from recommender.inventory.manifests import (
    NODE_IP,
    POD_CIDR,
    inventory_from_manifests,
    load_manifests,
    manifest_items,
)
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import ContainerPort
from tests.conftest import FIXTURES, SAMPLES

BOUTIQUE = SAMPLES / "apps" / "online-boutique" / "upstream"
BOUTIQUE_APP = BOUTIQUE / "release" / "kubernetes-manifests.yaml"
BOUTIQUE_POLICIES = BOUTIQUE / "kustomize" / "components" / "network-policies"
SOCK = SAMPLES / "apps" / "sock-shop" / "upstream" / "deploy" / "kubernetes"
ALL_KINDS = FIXTURES / "inventory" / "manifests-all-kinds.yaml"

BOUTIQUE_DEPLOYMENTS = [
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "loadgenerator",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "redis-cart",
    "shippingservice",
]
SOCK_DEPLOYMENTS = [
    "carts",
    "carts-db",
    "catalogue",
    "catalogue-db",
    "front-end",
    "orders",
    "orders-db",
    "payment",
    "queue-master",
    "rabbitmq",
    "session-db",
    "shipping",
    "user",
    "user-db",
]


def _all_ips_unique_in_range(ips: list[str]) -> bool:
    return len(set(ips)) == len(ips) and all(ipaddress.ip_address(ip) in POD_CIDR for ip in ips)


# ---------------------------------------------------------------------------
# Online Boutique: 12 Deployments (no replicas field except loadgenerator: 1),
# 12 Services (frontend-external included), 11 ServiceAccounts, no namespace.
# ---------------------------------------------------------------------------


def test_online_boutique() -> None:
    load = load_manifests([BOUTIQUE_APP], default_namespace="onlineboutique")
    inv = load.inventory
    assert sorted(p.owner_name for p in inv.pods) == BOUTIQUE_DEPLOYMENTS  # type: ignore[type-var]
    assert {p.owner_kind for p in inv.pods} == {"Deployment"}
    assert len(inv.services) == 12
    assert {s.namespace for s in inv.services} == {"onlineboutique"}
    assert [n.name for n in inv.namespaces] == ["onlineboutique"]
    assert inv.namespaces[0].labels == {NAMESPACE_NAME_LABEL: "onlineboutique"}
    assert load.skipped_kinds == {"ServiceAccount": 11}
    assert _all_ips_unique_in_range([ip for p in inv.pods for ip in p.ips])
    pods = {p.owner_name: p for p in inv.pods}
    assert pods["redis-cart"].container_ports == (ContainerPort(6379),)
    assert pods["frontend"].labels["app"] == "frontend"
    template_hash = pods["frontend"].labels["pod-template-hash"]
    assert pods["frontend"].name.startswith(f"frontend-{template_hash}-")
    assert inv.sources == (str(BOUTIQUE_APP),)


def test_online_boutique_with_its_policies() -> None:
    load = load_manifests([BOUTIQUE_APP, BOUTIQUE_POLICIES], default_namespace="onlineboutique")
    names = [p["metadata"]["name"] for p in load.inventory.network_policies]
    assert len(names) == 13  # one file per policy; kustomization.yaml is a Component
    assert "deny-all" in names
    assert {p["metadata"]["namespace"] for p in load.inventory.network_policies} == {
        "onlineboutique"
    }
    assert load.skipped_kinds == {"Component": 1, "ServiceAccount": 11}


# ---------------------------------------------------------------------------
# Sock Shop: 14 Deployments x 1 replica, 14 Services, namespace sock-shop; the
# policy folder holds 13 NetworkPolicies and the Namespace again.
# ---------------------------------------------------------------------------


def test_sock_shop() -> None:
    load = load_manifests([SOCK / "manifests", SOCK / "manifests-policy"])
    inv = load.inventory
    assert sorted(p.owner_name for p in inv.pods) == SOCK_DEPLOYMENTS  # type: ignore[type-var]
    assert len(inv.services) == 14
    assert len(inv.network_policies) == 13
    assert [n.name for n in inv.namespaces] == ["sock-shop"]
    assert load.duplicates == 1  # the Namespace appears in both folders
    assert load.synthesized_namespaces == ()
    pods = {p.owner_name: p for p in inv.pods}
    assert pods["carts"].labels["name"] == "carts"


def test_sock_shop_loadtest_replicas() -> None:
    inv = inventory_from_manifests([SOCK / "manifests-loadtest"])
    assert [p.workload for p in inv.pods] == ["deployment/load-test"] * 2
    assert {p.namespace for p in inv.pods} == {"loadtest"}
    assert len({p.name for p in inv.pods}) == 2


# ---------------------------------------------------------------------------
# Every workload kind
# ---------------------------------------------------------------------------


def test_every_workload_kind() -> None:
    load = load_manifests([ALL_KINDS], default_namespace="shop")
    pods = load.inventory.pods
    by_workload: dict[str, list[str]] = {}
    for pod in pods:
        by_workload.setdefault(pod.workload, []).append(pod.key)
    assert {k: len(v) for k, v in by_workload.items()} == {
        "deployment/web": 3,
        "statefulset/db": 2,
        "daemonset/node-agent": 1,
        "job/migrate": 2,
        "cronjob/backup": 1,
        "pod/debug": 1,
    }  # ReplicaSet has replicas: 0
    assert by_workload["statefulset/db"] == ["data/db-0", "data/db-1"]
    assert load.skipped_kinds == {"ConfigMap": 1}
    assert [n.name for n in load.inventory.namespaces] == ["data", "jobs", "kube-system", "shop"]
    assert load.inventory.namespaces[1].labels == {"team": "data", NAMESPACE_NAME_LABEL: "jobs"}


def test_controller_labels_and_ports() -> None:
    pods = {p.key: p for p in inventory_from_manifests([ALL_KINDS], "shop").pods}
    db0 = pods["data/db-0"]
    assert db0.labels["statefulset.kubernetes.io/pod-name"] == "db-0"
    assert db0.labels["apps.kubernetes.io/pod-index"] == "0"
    assert db0.labels["controller-revision-hash"].startswith("db-")
    web = [p for p in pods.values() if p.owner_name == "web"]
    assert {p.labels["pod-template-hash"] for p in web} == {web[0].labels["pod-template-hash"]}
    assert web[0].labels["tier"] == "frontend"
    assert web[0].container_ports == (
        ContainerPort(8080, "TCP", "http"),
        ContainerPort(15001, "TCP", "envoy"),
    )
    agent = next(p for p in pods.values() if p.owner_name == "node-agent")
    assert agent.host_network
    assert agent.ips == (NODE_IP,)
    backup = next(p for p in pods.values() if p.owner_kind == "CronJob")
    assert backup.labels["job-name"].startswith("backup-")
    assert pods["shop/debug"].container_ports == (ContainerPort(53, "UDP"),)


def test_policy_and_service_namespace_default() -> None:
    inv = inventory_from_manifests([ALL_KINDS], default_namespace="shop")
    assert [(s.namespace, s.name) for s in inv.services] == [("shop", "web")]
    (policy,) = inv.network_policies
    assert policy["metadata"] == {"name": "web-ingress", "namespace": "shop"}


# ---------------------------------------------------------------------------
# Determinism and stability
# ---------------------------------------------------------------------------


def test_deterministic_output() -> None:
    first = render_inventory_list(manifest_items([ALL_KINDS, BOUTIQUE_APP]))
    second = render_inventory_list(manifest_items([ALL_KINDS, BOUTIQUE_APP]))
    assert first == second
    assert inventory_from_manifests([BOUTIQUE_APP]) == inventory_from_manifests([BOUTIQUE_APP])


def test_items_round_trip_through_a_list_file(tmp_path: Path) -> None:
    path = tmp_path / "synthetic.json"
    path.write_bytes(render_inventory_list(manifest_items([ALL_KINDS], "shop")))
    assert read_inventory([path]).pods == inventory_from_manifests([ALL_KINDS], "shop").pods


def _deployment(name: str, replicas: int) -> dict[str, object]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "a"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }


def test_scaling_keeps_hash_names_and_ips(tmp_path: Path) -> None:
    small, large = tmp_path / "small.yaml", tmp_path / "large.yaml"
    small.write_text(yaml.safe_dump(_deployment("api", 3)))
    large.write_text(yaml.safe_dump_all([_deployment("api", 5), _deployment("other", 2)]))
    before = {p.name: p.ips for p in inventory_from_manifests([small]).pods}
    after = {p.name: p.ips for p in inventory_from_manifests([large]).pods}
    assert len(after) == 7
    assert {name: after[name] for name in before} == before


def test_many_pods_get_unique_ips(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_deployment("big", 3000)))
    pods = inventory_from_manifests([path]).pods
    assert len(pods) == 3000
    assert _all_ips_unique_in_range([p.ips[0] for p in pods])


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_workload_without_template(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1}\n")
    with pytest.raises(InputError, match="Deployment without spec.template") as err:
        inventory_from_manifests([path])
    assert str(path) in str(err.value)


def test_negative_replicas(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_deployment("x", -1)))
    with pytest.raises(InputError, match="spec.replicas must be a non-negative integer"):
        inventory_from_manifests([path])


def test_bad_container_port_names_file_and_pod(tmp_path: Path) -> None:
    doc = _deployment("x", 1)
    doc["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": "http"}]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError, match=r"\(Deployment x\): pod x-.*containerPort") as err:
        inventory_from_manifests([path])
    assert err.value.path == str(path)


def test_missing_path_and_empty_dir(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        inventory_from_manifests([tmp_path / "absent.yaml"])
    with pytest.raises(InputError, match="no manifest files"):
        inventory_from_manifests([tmp_path])
