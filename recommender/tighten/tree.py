"""The output tree: the same layout as ``netpol recommend``, with ``TIGHTEN.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml

from recommender.model import NetworkPolicy
from recommender.policy_io.kinds.cnp import CLUSTER_DIR
from recommender.policy_io.policy_writer import kustomization, render_tree
from recommender.policy_io.policy_yaml import _dump


def render_tighten_tree(policies: Sequence[NetworkPolicy], report_md: str) -> dict[str, str]:
    """``{relative path: text}``: ``<ns>/<name>.yaml``, kustomizations and ``TIGHTEN.md``.

    Policies are written in namespace/name order, so the bytes do not depend
    on how the current set was split into files.
    """
    ordered = sorted(policies, key=lambda p: (p.namespace, p.name))
    files = render_tree([_clean(p) for p in ordered], "")
    files.pop("SUMMARY.md", None)
    files["TIGHTEN.md"] = report_md
    return dict(sorted(files.items()))


def _clean(p: NetworkPolicy) -> NetworkPolicy:
    """Where a policy was read from is not part of what is written."""
    return replace(p, source=None)


def add_written_through(
    files: Mapping[str, str],
    cilium: Sequence[Mapping[str, Any]],
    cluster: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """``files`` plus the Cilium (``<ns>/<name>.yaml``) and cluster (``_cluster/``) objects.

    A file name the tree already holds (a NetworkPolicy of the same namespace and
    name, a learned ClusterNetworkPolicy) gets the kind as a second suffix
    (``<name>.cilium.yaml``, ``<name>.cnp.yaml``). The kustomizations of the
    touched directories list the added files after the existing ones.
    """
    out = dict(files)
    added: dict[str, list[str]] = {}
    items = [(_namespace(obj), _name(obj), "cilium", obj) for obj in cilium]
    items += [(CLUSTER_DIR, _name(obj), "cnp", obj) for obj in cluster]
    # namespace/name order: the bytes do not depend on how the input was split into files
    for directory, name, suffix, obj in sorted(items, key=lambda x: x[:3]):
        file = f"{name}.yaml"
        if f"{directory}/{file}" in out:
            file = f"{name}.{suffix}.yaml"
        if f"{directory}/{file}" in out:
            raise ValueError(f"two objects would be written to {directory}/{file}")
        out[f"{directory}/{file}"] = _dump(dict(obj))
        added.setdefault(directory, []).append(file)
    for directory, names in added.items():
        path = f"{directory}/kustomization.yaml"
        before = yaml.safe_load(out[path])["resources"] if path in out else []
        out[path] = kustomization([*before, *names])
    if added:
        top = yaml.safe_load(out.get("kustomization.yaml", "resources: []"))["resources"]
        out["kustomization.yaml"] = kustomization(sorted({*top, *added}))
    return dict(sorted(out.items()))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name"))


def _namespace(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "default")
