"""Render a recommendation as the kustomize tree of any policy kind, validated offline.

Same layout as :mod:`recommender.policy_io.policy_writer` (one file per policy,
a kustomization per namespace and one on top); every object is checked against
the kind's schema shipped in ``recommender/policy_io/schemas`` before anything
is written.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from recommender.model import Inventory, NetworkPolicy
from recommender.policy_io.kinds import KINDS
from recommender.policy_io.kinds.calico import staged_policy_dict
from recommender.policy_io.kinds.cilium import cilium_policies
from recommender.policy_io.kinds.cnp import CLUSTER_DIR, plan_cluster_policies, summary_section
from recommender.policy_io.policy_writer import kustomization, render_tree
from recommender.policy_io.policy_yaml import _dump

SCHEMAS: dict[str, str] = {
    "CiliumNetworkPolicy": "ciliumnetworkpolicy.json",
    "StagedKubernetesNetworkPolicy": "stagedkubernetesnetworkpolicy.json",
    "ClusterNetworkPolicy": "clusternetworkpolicy.json",
}


@cache
def schema(kind: str) -> dict[str, Any]:
    """The shipped schema of ``kind`` (a ``kind`` value, e.g. CiliumNetworkPolicy)."""
    text = resources.files("recommender.policy_io").joinpath("schemas", SCHEMAS[kind]).read_text()
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def schema_errors(obj: dict[str, Any]) -> list[str]:
    """``path: message`` for every schema violation of one written object."""
    validator = jsonschema.Draft202012Validator(schema(str(obj.get("kind"))))
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '<object>'}: {e.message}"
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(map(str, e.path)))
    ]


def kind_objects(
    kind: str, policies: Sequence[NetworkPolicy], inventory: Inventory
) -> list[dict[str, Any]]:
    """The objects of ``kind`` for ``policies`` (same order)."""
    if kind == "cilium":
        return cilium_policies(policies, inventory)
    if kind == "calico-staged":
        return [staged_policy_dict(p) for p in policies]
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def render_kind_tree(
    kind: str, policies: Sequence[NetworkPolicy], summary: str, inventory: Inventory
) -> dict[str, str]:
    """``{relative path: text}`` for ``kind``; ValueError naming any invalid object."""
    if kind == "networkpolicy":
        return render_tree(policies, summary)
    if kind == "clusternetworkpolicy":
        return render_cnp_tree(policies, summary, inventory)
    files: dict[str, str] = {}
    namespaces: dict[str, list[str]] = {}
    for obj in kind_objects(kind, policies, inventory):
        meta = obj["metadata"]
        errors = schema_errors(obj)
        if errors:
            raise ValueError(f"{obj['kind']} {meta['namespace']}/{meta['name']}: {errors[0]}")
        path = f"{meta['namespace']}/{meta['name']}.yaml"
        if path in files:
            raise ValueError(f"two policies would be written to {path}")
        files[path] = _dump(obj)
        namespaces.setdefault(meta["namespace"], []).append(f"{meta['name']}.yaml")
    for ns, names in namespaces.items():
        files[f"{ns}/kustomization.yaml"] = kustomization(names)
    files["kustomization.yaml"] = kustomization(sorted(namespaces))
    files["SUMMARY.md"] = summary
    return dict(sorted(files.items()))


def render_cnp_tree(
    policies: Sequence[NetworkPolicy], summary: str, inventory: Inventory
) -> dict[str, str]:
    """``--kind clusternetworkpolicy``: the v1 tree of what stays namespaced plus ``_cluster/``.

    Raises
    ------
    ValueError
        A ClusterNetworkPolicy that fails the shipped schema (nothing is written).
    """
    plan = plan_cluster_policies(policies, inventory)
    files = render_tree(plan.policies, summary + summary_section(plan))
    if not plan.cluster:
        return files
    names = []
    for obj in plan.cluster:
        name = obj["metadata"]["name"]
        errors = schema_errors(obj)
        if errors:
            raise ValueError(f"ClusterNetworkPolicy {name}: {errors[0]}")
        files[f"{CLUSTER_DIR}/{name}.yaml"] = _dump(obj)
        names.append(f"{name}.yaml")
    files[f"{CLUSTER_DIR}/kustomization.yaml"] = kustomization(names)
    namespaces = sorted({p.namespace for p in plan.policies} | {CLUSTER_DIR})
    files["kustomization.yaml"] = kustomization(namespaces)
    return dict(sorted(files.items()))
