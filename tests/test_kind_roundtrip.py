"""recommend --kind X round-trips: every learned observation is allowed by what X says.

The shop fixture (tests/fixtures/recommend/shop) is recommended once; its policies
are written in each kind, read back through ``load_policies`` and replayed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recommender.policy_io.kinds.tree import kind_objects, render_kind_tree, schema_errors
from recommender.policy_io.policy_writer import render_tree, write_tree
from recommender.policy_io.policy_yaml import load_policies
from recommender.recommend.pipeline import recommend
from recommender.semantics import Endpoint, pod_endpoint
from recommender.semantics.cilium import compile_policy_kinds
from recommender.semantics.cnp import compile_all_kinds
from tests.fixtures.recommend.shop import NODE_IPS, shop_inventory, shop_observations


@pytest.fixture(scope="module")
def inventory():
    return shop_inventory()


@pytest.fixture(scope="module")
def rec(inventory):
    return recommend(shop_observations(), inventory)


def _endpoints(rec, role: str, key: str) -> list[Endpoint]:
    if role == "workload":
        wl = rec.index.workloads[key]
        ns = rec.index.namespace_labels(wl.namespace)
        return [
            pod_endpoint(wl.namespace, wl.label_map, ns, ports=ports)
            for ports in wl.port_sets or ((),)
        ]
    kind = {"world": "world", "host": "host", "apiserver": "cluster_infra"}[role]
    return [Endpoint(kind, ip=key.split(":", 1)[1])]


def _denied_learned(rec, policy_set) -> list[str]:
    out = []
    for r in rec.learned.to_dict("records"):
        port = None if r["port"] != r["port"] or r["port"] is None else int(r["port"])
        for s in _endpoints(rec, r["src_role"], r["src_key"]):
            for d in _endpoints(rec, r["dst_role"], r["dst_key"]):
                decision = policy_set.decide(s, d, port, r["protocol"])
                if not decision.is_allowed:
                    out.append(f"{r['src_key']} -> {r['dst_key']}/{port}: {decision}")
    return out


def _read_back(tmp_path: Path, files: dict[str, str], inventory):
    out = write_tree(files, tmp_path / "out")
    loaded = load_policies([str(out)])
    return loaded, compile_policy_kinds(loaded.policies, loaded.cilium, inventory)


@pytest.mark.parametrize("kind", ["networkpolicy", "cilium", "calico-staged"])
def test_every_kind_validates_against_its_schema(rec, inventory, kind):
    if kind == "networkpolicy":
        return  # the v1 output is validated by the self-check (kubernetes-validate)
    objects = kind_objects(kind, rec.policies, inventory)
    assert len(objects) == len(rec.policies)
    assert [e for o in objects for e in schema_errors(o)] == []


def test_schema_rejects_a_broken_cilium_object(rec, inventory):
    obj = kind_objects("cilium", rec.policies, inventory)[0]
    obj["spec"]["egress"] = [{"toEntities": ["the-moon"]}]
    assert any("the-moon" in e for e in schema_errors(obj))
    obj["spec"]["egress"] = [{"toPorts": [{"ports": [{"port": "80", "protocol": "ICMP"}]}]}]
    assert any("ICMP" in e for e in schema_errors(obj))


def test_networkpolicy_kind_is_the_v1_tree_byte_for_byte(rec, inventory):
    assert render_kind_tree("networkpolicy", rec.policies, "S", inventory) == render_tree(
        rec.policies, "S"
    )


def test_cilium_round_trip_denies_nothing_learned(rec, inventory, tmp_path):
    files = render_kind_tree("cilium", rec.policies, "", inventory)
    loaded, ps = _read_back(tmp_path, files, inventory)
    assert loaded.policies == []
    assert len(loaded.cilium) == len(rec.policies)
    assert len(rec.learned) > 10
    assert _denied_learned(rec, ps) == []


def test_cilium_tree_has_the_v1_layout_and_is_stable(rec, inventory):
    a = render_kind_tree("cilium", rec.policies, "", inventory)
    v1 = render_tree(rec.policies, "")
    assert sorted(a) == sorted(v1)
    assert {k: v for k, v in a.items() if k.endswith("kustomization.yaml")} == {
        k: v for k, v in v1.items() if k.endswith("kustomization.yaml")
    }
    assert render_kind_tree("cilium", rec.policies, "", inventory) == a


def test_calico_staged_policies_are_not_enforced(rec, inventory, tmp_path):
    files = render_kind_tree("calico-staged", rec.policies, "", inventory)
    assert "kind: StagedKubernetesNetworkPolicy" in files["shop/default-deny.yaml"]
    loaded, ps = _read_back(tmp_path, files, inventory)
    assert loaded.policies == []
    assert loaded.cilium == []
    assert "StagedKubernetesNetworkPolicy" in (loaded.skipped_note() or "")
    # Nothing is enforced: even a flow no rule learned passes.
    web = pod_endpoint("shop", {"app": "redis"}, ip="10.0.0.9")
    assert ps.decide(web, Endpoint("world", ip="198.51.100.1"), 22, "TCP").is_allowed


def test_staged_rules_equal_the_v1_rules(rec, inventory):
    v1 = render_tree(rec.policies, "")["shop/worker.yaml"]
    staged = render_kind_tree("calico-staged", rec.policies, "", inventory)["shop/worker.yaml"]
    assert staged.split("metadata:", 1)[1] == v1.split("metadata:", 1)[1]
    assert "apiVersion: projectcalico.org/v3" in staged


def _node_of(inventory, key: str) -> str:
    return next(p.node for p in inventory.pods if p.key.startswith(key) and p.node)


def test_kubelet_probe_denied_by_cilium_and_unexpressible_in_v1(rec, inventory, tmp_path):
    """A worker pod probing its own node's kubelet (10250): only Cilium policy stops it."""
    pod = next(p for p in inventory.pods if p.namespace == "shop" and p.name.startswith("worker"))
    src = pod_endpoint("shop", pod.labels, ip=pod.ips[0], node=pod.node)
    node = next(n for n in inventory.nodes if n.name == pod.node)
    own = Endpoint("host", ip=node.addresses[0], node=node.name)
    v1 = compile_policy_kinds(rec.policies, [], inventory).decide(src, own, 10250, "TCP")
    assert v1.is_allowed
    assert "own node" in (v1.reason or "")
    files = render_kind_tree("cilium", rec.policies, "", inventory)
    _, ps = _read_back(tmp_path, files, inventory)
    cnp = ps.decide(src, own, 10250, "TCP")
    assert cnp.verdict == "denied"
    assert cnp.denied_by == "egress"
    assert set(NODE_IPS) >= {own.ip}


def test_fqdn_rule_replaces_the_pinned_address(rec, inventory):
    text = render_kind_tree("cilium", rec.policies, "", inventory)["shop/worker.yaml"]
    assert "toFQDNs:" in text
    assert "matchName: api.payments.example" in text
    assert "203.0.113.10" not in text.split("spec:", 1)[1]
    assert "kube-apiserver" in text  # the API server ipBlock became the entity
    dns = render_kind_tree("cilium", rec.policies, "", inventory)["shop/allow-dns.yaml"]
    assert "matchPattern: '*'" in dns


def test_clusternetworkpolicy_round_trip_denies_nothing_learned(rec, inventory, tmp_path):
    files = render_kind_tree("clusternetworkpolicy", rec.policies, "", inventory)
    out = write_tree(files, tmp_path / "out")
    loaded = load_policies([str(out)])
    assert len(loaded.cluster) == 3  # dns, the worker's API server, baseline
    assert {p.tier for p in loaded.cluster} == {"Admin", "Baseline"}
    ps = compile_all_kinds(loaded.policies, loaded.cilium, loaded.cluster, inventory)
    assert len(rec.learned) > 10
    assert _denied_learned(rec, ps) == []


def test_clusternetworkpolicy_tree_is_stable_and_valid(rec, inventory):
    a = render_kind_tree("clusternetworkpolicy", rec.policies, "S", inventory)
    assert render_kind_tree("clusternetworkpolicy", rec.policies, "S", inventory) == a
    assert "  - _cluster" in a["kustomization.yaml"]
    assert "shop/allow-dns.yaml" not in a  # the Admin DNS guardrail took it
    assert "guardrail-dns (Admin, Accept)" in a["SUMMARY.md"]
    cluster = [t for k, t in a.items() if k.startswith("_cluster/") and "kustom" not in k]
    objs = [yaml.safe_load(t) for t in cluster]
    assert len(objs) == 3
    assert [e for o in objs for e in schema_errors(o)] == []
