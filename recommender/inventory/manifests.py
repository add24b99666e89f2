"""SYNTHETIC inventory from workload manifests (what the cluster *would* run).

For lint, diff and shadow tests on public apps whose manifests are known but
no cluster dump exists. Nothing here was observed: pod names, UIDs,
``pod-template-hash`` values and pod IPs are invented, deterministically, so
equal manifests always give equal inventories. Do not mistake the result for a
snapshot of a real cluster.

Expansion: Deployment, StatefulSet, ReplicaSet -> ``spec.replicas`` pods
(default 1); DaemonSet -> one pod (there are no nodes); Job ->
``spec.parallelism`` pods (default 1); CronJob -> one Job run with one pod;
Pod as written. Each pod carries its template labels plus the labels the
controller would add, and ownerReferences that the shared parser resolves to
the top owner. Namespace, Service and NetworkPolicy objects are kept; other
kinds are skipped and counted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from recommender.errors import InputError
from recommender.inventory.files import InventoryLoad, RawItem, iter_file_items, load_items
from recommender.inventory.k8s_defaults import default_object
from recommender.inventory.k8s_validation import check_metadata
from recommender.model import Inventory

#: Synthetic pod IPs come from this range (the common kubeadm/flannel pod CIDR).
POD_CIDR = ipaddress.ip_network("10.244.0.0/16")
#: hostNetwork pods get the address of this single synthetic node.
NODE_NAME, NODE_IP = "synthetic-node", "192.168.0.1"
#: Scheduled time of the one synthetic run of every CronJob, in minutes since the epoch.
CRONJOB_RUN_MINUTES = 29_000_000
#: Alphabet of Kubernetes' ``rand.SafeEncodeString`` (no vowels, no look-alikes).
_SAFE = "bcdfghjklmnpqrstvwxz2456789"
_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_CLUSTER_SCOPED = frozenset({"Namespace", "Node"})


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x00".join(parts).encode()).digest()


def safe_hash(*parts: str) -> str:
    """A ``pod-template-hash``-style string: a 32-bit number spelled in the safe alphabet.

    Like the controller's hash in shape only (the real one is FNV over Go structs).

    >>> safe_hash("a") == safe_hash("a") and set(safe_hash("a")) <= set(_SAFE)
    True
    """
    number = int.from_bytes(_digest(*parts)[:4], "big")
    return "".join(_SAFE[ord(d) % len(_SAFE)] for d in str(number))


def _suffix(*parts: str) -> str:
    """A 5-character generated-name suffix, as ``generateName`` appends."""
    digest = _digest(*parts)
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:5])


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _count(spec: Mapping[str, Any], key: str, where: str) -> int:
    value = spec.get(key)
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(where, f"spec.{key} must be a non-negative integer, got {value!r}")
    return value


def _object(value: Any, where: str, field: str) -> dict[str, Any]:
    """A JSON object (``{}`` for null), or an InputError naming the field."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(where, f"{field}: expected an object, got {type(value).__name__}")
    return dict(value)


def _template(obj: Mapping[str, Any], where: str) -> tuple[dict[str, str], dict[str, Any]]:
    """(labels, pod spec) of a workload's pod template; label syntax is checked on the pods."""
    spec = _object(obj.get("spec"), where, "spec")
    if obj.get("kind") == "CronJob":
        job = _object(spec.get("jobTemplate"), where, "spec.jobTemplate")
        spec = _object(job.get("spec"), where, "spec.jobTemplate.spec")
    template = spec.get("template")
    if not isinstance(template, Mapping):
        raise InputError(where, f"{obj.get('kind')} without spec.template")
    meta = _object(template.get("metadata"), where, "spec.template.metadata")
    labels = _object(meta.get("labels"), where, "spec.template.metadata.labels")
    return labels, _object(template.get("spec"), where, "spec.template.spec")


def _owner(kind: str, name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
        "kind": kind,
        "name": name,
        "controller": True,
        "blockOwnerDeletion": True,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"synthetic:{kind}/{namespace}/{name}")),
    }


def _pod(
    namespace: str,
    name: str,
    labels: dict[str, str],
    spec: dict[str, Any],
    owner: dict[str, Any] | None,
) -> dict[str, Any]:
    """A raw pod as ``kubectl get -o json`` would show it (IPs filled in later)."""
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": labels,
        "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"synthetic:Pod/{namespace}/{name}")),
        "annotations": {"netpol-recommender/synthetic": "true"},
    }
    if owner:
        meta["ownerReferences"] = [owner]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {**spec, "nodeName": NODE_NAME},
        "status": {"phase": "Running", "hostIP": NODE_IP},
    }


def expand_workload(obj: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    """The raw pods one workload manifest would create (see the module docstring)."""
    kind = str(obj["kind"])
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    labels, spec = _template(obj, where)
    # Like the controllers, hash the pod template only: scaling keeps the hash.
    template_hash = safe_hash(kind, namespace, name, _canonical([labels, spec]))
    workload_spec = obj.get("spec") or {}
    if kind == "Deployment":
        rs = f"{name}-{template_hash}"
        return [
            _pod(
                namespace,
                f"{rs}-{_suffix(rs, str(i))}",
                {**labels, "pod-template-hash": template_hash},
                spec,
                _owner("ReplicaSet", rs, namespace),
            )
            for i in range(_count(workload_spec, "replicas", where))
        ]
    if kind == "StatefulSet":
        revision = f"{name}-{template_hash}"
        return [
            _pod(
                namespace,
                f"{name}-{i}",
                {
                    **labels,
                    "controller-revision-hash": revision,
                    "statefulset.kubernetes.io/pod-name": f"{name}-{i}",
                    "apps.kubernetes.io/pod-index": str(i),
                },
                spec,
                _owner("StatefulSet", name, namespace),
            )
            for i in range(_count(workload_spec, "replicas", where))
        ]
    if kind == "DaemonSet":
        extra = {"controller-revision-hash": template_hash, "pod-template-generation": "1"}
        return [
            _pod(
                namespace,
                f"{name}-{_suffix(name, NODE_NAME)}",
                {**labels, **extra},
                spec,
                _owner("DaemonSet", name, namespace),
            )
        ]
    if kind == "ReplicaSet":
        return [
            _pod(
                namespace,
                f"{name}-{_suffix(name, str(i))}",
                labels,
                spec,
                _owner("ReplicaSet", name, namespace),
            )
            for i in range(_count(workload_spec, "replicas", where))
        ]
    job = f"{name}-{CRONJOB_RUN_MINUTES}" if kind == "CronJob" else name
    job_spec = (
        workload_spec["jobTemplate"].get("spec") or {}  # shapes checked by _template
        if kind == "CronJob"
        else workload_spec
    )
    job_labels = {**labels, "job-name": job, "batch.kubernetes.io/job-name": job}
    return [
        _pod(
            namespace,
            f"{job}-{_suffix(job, str(i))}",
            job_labels,
            spec,
            _owner("Job", job, namespace),
        )
        for i in range(_count(job_spec, "parallelism", where))
    ]


WORKLOAD_KINDS = frozenset(
    {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
)


def manifest_files(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files to read: each file as given, each directory walked for YAML/JSON, sorted."""
    files: list[str] = []
    for path in paths:
        target = Path(path)
        if target.is_dir():
            files += sorted(
                str(p) for p in target.rglob("*") if p.is_file() and p.suffix in _MANIFEST_SUFFIXES
            )
        else:
            files.append(str(target))  # a missing file is reported by the reader
    return files


def _with_namespace(obj: Mapping[str, Any], default_namespace: str) -> dict[str, Any]:
    """A copy with ``metadata.namespace`` set for namespaced kinds."""
    if not isinstance(obj.get("metadata") or {}, Mapping):
        return dict(obj)  # refused later, with the item named
    meta = dict(obj.get("metadata") or {})
    if obj.get("kind") not in _CLUSTER_SCOPED and not meta.get("namespace"):
        meta["namespace"] = default_namespace
    return {**obj, "metadata": meta}


def _manifest_items(files: list[str], default_namespace: str) -> Iterator[RawItem]:
    """Every object, pods expanded from workloads, namespaces filled in."""
    for item in (i for name in files for i in iter_file_items(name)):
        obj = _with_namespace(item.obj, default_namespace)
        if obj.get("kind") not in WORKLOAD_KINDS:
            yield RawItem(item.source, item.where, obj)
            continue
        problems = list(check_metadata(obj))  # the pods' names and labels derive from these
        if problems:
            raise item.error(f"{problems[0][0]}: {problems[0][1]}")
        where = f"{item.where} ({obj['kind']} {obj['metadata']['name']})".lstrip()
        for pod in expand_workload(obj, f"{item.source}: {where}"):
            yield RawItem(item.source, f"{where}: pod {pod['metadata']['name']}", pod)


def _assign_ips(pods: list[dict[str, Any]]) -> None:
    """Give every pod without an IP a stable address from :data:`POD_CIDR`.

    The address is a hash of ``namespace/name`` with linear probing, so adding
    a workload rarely moves another pod's IP; hostNetwork pods use the node IP.
    """
    size = POD_CIDR.num_addresses - 2
    pods = [p for p in pods if _has_plain_status(p)]  # others are refused by validation
    used = {
        ip.get("ip")
        for p in pods
        for ip in p["status"].get("podIPs") or []
        if isinstance(ip, Mapping)
    }
    for pod in sorted(pods, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
        status = pod["status"]
        if status.get("podIP") or status.get("podIPs"):
            continue
        spec = pod.get("spec")
        if isinstance(spec, Mapping) and spec.get("hostNetwork") is True:
            status.update(podIP=NODE_IP, podIPs=[{"ip": NODE_IP}])
            continue
        if len(used) >= size:
            raise InputError(None, f"more than {size} synthetic pods do not fit in {POD_CIDR}")
        offset = (
            int.from_bytes(
                _digest(pod["metadata"]["namespace"], pod["metadata"]["name"])[:4], "big"
            )
            % size
        )
        while str(POD_CIDR[offset + 1]) in used:
            offset = (offset + 1) % size
        ip = str(POD_CIDR[offset + 1])
        used.add(ip)
        status.update(podIP=ip, podIPs=[{"ip": ip}])


def _has_plain_status(pod: dict[str, Any]) -> bool:
    """A pod whose name, namespace and status have the shapes IP assignment needs."""
    meta = pod.get("metadata")
    if not isinstance(meta, Mapping) or not all(
        isinstance(meta.get(k), str) for k in ("name", "namespace")
    ):
        return False
    status = pod.setdefault("status", {})
    return isinstance(status, dict) and isinstance(status.get("podIPs") or [], list)


def _located_items(
    paths: Sequence[str | os.PathLike[str]], default_namespace: str
) -> tuple[list[str], list[RawItem]]:
    files = manifest_files(paths)
    if not files:
        raise InputError(None, "no manifest files given or found")
    items = list(_manifest_items(files, default_namespace))
    _assign_ips([i.obj for i in items if i.kind == "Pod" and isinstance(i.obj, dict)])
    return files, items


def manifest_items(
    paths: Sequence[str | os.PathLike[str]], default_namespace: str = "default"
) -> list[dict[str, Any]]:
    """SYNTHETIC raw objects (pods expanded) for manifests; see the module docstring.

    The list can be written with ``write_inventory_json`` as a List file. Objects
    carry the API server's defaults (``targetPort``, ``protocol`` ...), as a
    ``kubectl get -o json`` of that cluster would show them.
    """
    return [default_object(item.obj) for item in _located_items(paths, default_namespace)[1]]


def load_manifests(
    paths: Sequence[str | os.PathLike[str]], default_namespace: str = "default"
) -> InventoryLoad:
    """SYNTHETIC inventory plus the reader's warnings (skipped kinds, namespaces)."""
    files, items = _located_items(paths, default_namespace)
    return load_items(items, tuple(files))


def inventory_from_manifests(
    paths: Sequence[str | os.PathLike[str]], default_namespace: str = "default"
) -> Inventory:
    """SYNTHETIC inventory: the pods, services and policies these manifests would create.

    Parameters
    ----------
    paths
        Manifest files or directories (multi-document YAML or JSON).
    default_namespace
        Namespace for objects whose manifest does not name one.

    Raises
    ------
    InputError
        A file is missing or malformed, or a workload lacks a pod template.
    """
    return load_manifests(paths, default_namespace).inventory
