"""Raw Kubernetes JSON objects -> ``recommender.model`` inventory values.

One parser serves inventory files (``kubectl get -o json``), the live API
(raw list responses) and synthetic manifests. It reads camelCase Kubernetes
field names; the core never sees them. Functions raise :class:`ItemError`
with a field path; the caller adds the file and item location.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from recommender.labels import namespace_labels
from recommender.model import (
    ContainerPort,
    Endpoint,
    EndpointSlice,
    Namespace,
    Node,
    Pod,
    Service,
    ServicePort,
)

Raw = Mapping[str, Any]

#: Kinds only used to resolve a pod's top owner; they are not inventory objects.
OWNER_KINDS: frozenset[str] = frozenset(
    {
        "ReplicaSet",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "CronJob",
        "ReplicationController",
    }
)

#: ``kubernetes.io/service-name`` ties an EndpointSlice to its Service.
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

# The CronJob controller names a Job ``<cronjob>-<scheduled time>``: minutes since
# the epoch in batch/v1 (``getTimeHashInMinutes``, 8 digits since 1989) and seconds
# in the old v1beta1 controller (10 digits). Fewer digits: an ordinary Job name.
_CRONJOB_JOB_NAME = re.compile(r"^(?P<cronjob>.+)-(?P<stamp>[0-9]{8,})$")


class ItemError(ValueError):
    """A malformed object; ``field`` is the path inside the object."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


# ---------------------------------------------------------------------------
# Field helpers
# ---------------------------------------------------------------------------


def _map(value: Any, field: str) -> Raw:
    """A JSON object, or {} for null/absent."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ItemError(field, f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    """A JSON array, or [] for null/absent."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ItemError(field, f"expected a list, got {type(value).__name__}")
    return value


def _opt_str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ItemError(field, f"expected a string, got {value!r}")
    return value


def _port_number(value: Any, field: str) -> int:
    """A port 1-65535 (``bool`` is not an int here)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ItemError(field, f"expected a port number 1-65535, got {value!r}")
    return value


def _string_map(value: Any, field: str) -> dict[str, str] | None:
    """A label/selector map; None when absent. Values must be strings, as the API requires."""
    if value is None:
        return None
    out: dict[str, str] = {}
    for key, val in _map(value, field).items():
        if not isinstance(val, str):
            raise ItemError(f"{field}.{key}", f"label values must be strings, got {val!r}")
        out[str(key)] = val
    return out


def object_name(obj: Raw) -> str:
    """``metadata.name``; required."""
    name = _map(obj.get("metadata"), "metadata").get("name")
    if not isinstance(name, str) or not name:
        raise ItemError("metadata.name", "missing or not a string")
    return name


def object_namespace(obj: Raw, default: str = "default") -> str:
    """``metadata.namespace``, ``default`` when absent (as ``kubectl apply`` does)."""
    ns = _opt_str(_map(obj.get("metadata"), "metadata").get("namespace"), "metadata.namespace")
    return ns or default


def object_labels(obj: Raw) -> dict[str, str]:
    """``metadata.labels`` (``{}`` when absent)."""
    return _string_map(_map(obj.get("metadata"), "metadata").get("labels"), "metadata.labels") or {}


def controller_ref(obj: Raw) -> tuple[str, str] | None:
    """``(kind, name)`` of the ownerReference with ``controller: true``, if any.

    >>> controller_ref({"metadata": {"ownerReferences": [
    ...     {"kind": "ReplicaSet", "name": "web-5d8f", "controller": True}]}})
    ('ReplicaSet', 'web-5d8f')
    >>> controller_ref({"metadata": {"ownerReferences": [{"kind": "X", "name": "y"}]}}) is None
    True
    """
    refs = _list(
        _map(obj.get("metadata"), "metadata").get("ownerReferences"), "metadata.ownerReferences"
    )
    for i, ref in enumerate(refs):
        ref = _map(ref, f"metadata.ownerReferences[{i}]")
        if ref.get("controller") is True:
            kind = _opt_str(ref.get("kind"), f"metadata.ownerReferences[{i}].kind")
            name = _opt_str(ref.get("name"), f"metadata.ownerReferences[{i}].name")
            if kind and name:
                return kind, name
    return None


# ---------------------------------------------------------------------------
# Objects
# ---------------------------------------------------------------------------


def parse_namespace(obj: Raw) -> Namespace:
    """A Namespace; ``kubernetes.io/metadata.name`` is always set."""
    name = object_name(obj)
    return Namespace(name=name, labels=namespace_labels(name, object_labels(obj)))


def _container_ports(spec: Raw) -> tuple[ContainerPort, ...]:
    """Ports of containers and of sidecars (initContainers with ``restartPolicy: Always``).

    Only such sidecar init containers keep running and can listen (KEP-753);
    an unset ``protocol`` defaults to TCP.
    """
    ports: list[ContainerPort] = []
    for group in ("containers", "initContainers"):
        for i, container in enumerate(_list(spec.get(group), f"spec.{group}")):
            container = _map(container, f"spec.{group}[{i}]")
            if group == "initContainers" and container.get("restartPolicy") != "Always":
                continue
            for j, port in enumerate(_list(container.get("ports"), f"spec.{group}[{i}].ports")):
                where = f"spec.{group}[{i}].ports[{j}]"
                port = _map(port, where)
                ports.append(
                    ContainerPort(
                        port=_port_number(port.get("containerPort"), f"{where}.containerPort"),
                        protocol=_opt_str(port.get("protocol"), f"{where}.protocol") or "TCP",
                        name=_opt_str(port.get("name"), f"{where}.name"),
                    )
                )
    return tuple(ports)


def pod_ips(status: Raw) -> tuple[str, ...]:
    """``status.podIPs[].ip``, else ``status.podIP`` (clusters before dual-stack).

    >>> pod_ips({"podIP": "10.0.0.1"}), pod_ips({"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}]})
    (('10.0.0.1',), ('10.0.0.1', 'fd00::1'))
    """
    ips = []
    for i, entry in enumerate(_list(status.get("podIPs"), "status.podIPs")):
        ip = _opt_str(_map(entry, f"status.podIPs[{i}]").get("ip"), f"status.podIPs[{i}].ip")
        if ip:
            ips.append(ip)
    if not ips:
        single = _opt_str(status.get("podIP"), "status.podIP")
        if single:
            ips.append(single)
    return tuple(ips)


def parse_pod(obj: Raw, owner: tuple[str, str] | None) -> Pod:
    """A Pod with its already-resolved top ``owner`` (kind, name).

    ``ips`` are kept for every phase; Succeeded/Failed pods may list an IP that
    now belongs to another pod, so IP lookups must check ``phase`` (FORMATS.md 2.7.3).
    """
    meta = _map(obj.get("metadata"), "metadata")
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    account = spec.get("serviceAccountName") or spec.get("serviceAccount")
    return Pod(
        namespace=object_namespace(obj),
        name=object_name(obj),
        labels=object_labels(obj),
        uid=_opt_str(meta.get("uid"), "metadata.uid"),
        owner_kind=owner[0] if owner else None,
        owner_name=owner[1] if owner else None,
        ips=pod_ips(status),
        host_ip=_opt_str(status.get("hostIP"), "status.hostIP"),
        host_network=spec.get("hostNetwork") is True,
        node=_opt_str(spec.get("nodeName"), "spec.nodeName"),
        phase=_opt_str(status.get("phase"), "status.phase"),
        container_ports=_container_ports(spec),
        service_account=_opt_str(account, "spec.serviceAccountName"),
        created=_opt_str(meta.get("creationTimestamp"), "metadata.creationTimestamp"),
        deleted=_opt_str(meta.get("deletionTimestamp"), "metadata.deletionTimestamp"),
    )


def _target_port(value: Any, field: str) -> int | str | None:
    """``targetPort``: a number, a named container port, or None (= ``port``)."""
    if value is None or isinstance(value, str):
        return value
    return _port_number(value, field)


def _service_ports(ports: list[Any], field: str, with_target: bool) -> tuple[ServicePort, ...]:
    out = []
    for i, port in enumerate(ports):
        where = f"{field}[{i}]"
        port = _map(port, where)
        out.append(
            ServicePort(
                port=_port_number(port.get("port"), f"{where}.port"),
                protocol=_opt_str(port.get("protocol"), f"{where}.protocol") or "TCP",
                name=_opt_str(port.get("name"), f"{where}.name") or None,
                target_port=_target_port(port.get("targetPort"), f"{where}.targetPort")
                if with_target
                else None,
            )
        )
    return tuple(out)


def parse_service(obj: Raw) -> Service:
    """A Service. Headless services (``clusterIP: None``) have no cluster IPs."""
    spec = _map(obj.get("spec"), "spec")
    ips = [str(ip) for ip in _list(spec.get("clusterIPs"), "spec.clusterIPs")]
    if not ips and spec.get("clusterIP"):
        ips = [str(spec["clusterIP"])]
    return Service(
        namespace=object_namespace(obj),
        name=object_name(obj),
        type=_opt_str(spec.get("type"), "spec.type") or "ClusterIP",
        selector=_string_map(spec.get("selector"), "spec.selector"),
        cluster_ips=tuple(ip for ip in ips if ip not in ("None", "")),
        ports=_service_ports(_list(spec.get("ports"), "spec.ports"), "spec.ports", True),
        external_name=_opt_str(spec.get("externalName"), "spec.externalName"),
    )


def _endpoint(entry: Raw, namespace: str, field: str) -> Endpoint:
    ref = _map(entry.get("targetRef"), f"{field}.targetRef")
    pod = None
    if ref.get("kind") == "Pod" and ref.get("name"):
        pod = f"{ref.get('namespace') or namespace}/{ref['name']}"
    ready = _map(entry.get("conditions"), f"{field}.conditions").get("ready")
    return Endpoint(
        addresses=tuple(str(a) for a in _list(entry.get("addresses"), f"{field}.addresses")),
        pod=pod,
        node=_opt_str(entry.get("nodeName"), f"{field}.nodeName"),
        ready=ready if isinstance(ready, bool) else None,
    )


def parse_endpoint_slice(obj: Raw) -> tuple[EndpointSlice, int]:
    """An EndpointSlice plus the number of ports without a number it left out.

    A port with ``port: null`` means "all ports" (discovery/v1 EndpointPort); the
    model cannot hold that, so the caller reports the count.
    """
    namespace = object_namespace(obj)
    raw_ports = _list(obj.get("ports"), "ports")
    numbered = [p for p in raw_ports if not (isinstance(p, Mapping) and p.get("port") is None)]
    endpoints = tuple(
        _endpoint(_map(e, f"endpoints[{i}]"), namespace, f"endpoints[{i}]")
        for i, e in enumerate(_list(obj.get("endpoints"), "endpoints"))
    )
    slice_ = EndpointSlice(
        namespace=namespace,
        name=object_name(obj),
        service=object_labels(obj).get(SERVICE_NAME_LABEL),
        endpoints=endpoints,
        ports=_service_ports(numbered, "ports", False),
    )
    return slice_, len(raw_ports) - len(numbered)


def parse_node(obj: Raw) -> Node:
    """A Node: its addresses (InternalIP, ExternalIP, Hostname ...) and pod CIDRs."""
    spec = _map(obj.get("spec"), "spec")
    status = _map(obj.get("status"), "status")
    addresses = []
    for i, entry in enumerate(_list(status.get("addresses"), "status.addresses")):
        address = _map(entry, f"status.addresses[{i}]").get("address")
        if isinstance(address, str) and address:
            addresses.append(address)
    cidrs = [str(c) for c in _list(spec.get("podCIDRs"), "spec.podCIDRs")]
    if not cidrs and spec.get("podCIDR"):
        cidrs = [str(spec["podCIDR"])]
    return Node(
        name=object_name(obj),
        addresses=tuple(addresses),
        pod_cidrs=tuple(cidrs),
        labels=object_labels(obj),
    )


# ---------------------------------------------------------------------------
# Top owner
# ---------------------------------------------------------------------------

OwnerIndex = Mapping[tuple[str, str, str], tuple[str, str] | None]


def index_owners(objects: list[Raw]) -> dict[tuple[str, str, str], tuple[str, str] | None]:
    """Map ``(kind, namespace, name)`` of owner objects to their own controller ref."""
    return {
        (str(o.get("kind")), object_namespace(o), object_name(o)): controller_ref(o)
        for o in objects
    }


def infer_parent(kind: str, name: str, pod_labels: Mapping[str, str]) -> tuple[str, str] | None:
    """The controller of an owner object absent from the inventory, when it is certain.

    A ReplicaSet named ``<deployment>-<pod-template-hash>`` belongs to that
    Deployment; the suffix must equal the pod's ``pod-template-hash`` label, since
    a hand-made ReplicaSet may carry any name. A Job named ``<cronjob>-<8+ digits>``
    was created by that CronJob.

    >>> infer_parent("ReplicaSet", "web-5d8f9c", {"pod-template-hash": "5d8f9c"})
    ('Deployment', 'web')
    >>> infer_parent("ReplicaSet", "web-5d8f9c", {}) is None
    True
    >>> infer_parent("Job", "backup-29312640", {})
    ('CronJob', 'backup')
    """
    if kind == "ReplicaSet":
        template_hash = pod_labels.get("pod-template-hash")
        suffix = f"-{template_hash}"
        if template_hash and name.endswith(suffix) and len(name) > len(suffix):
            return "Deployment", name[: -len(suffix)]
        return None
    if kind == "Job":
        match = _CRONJOB_JOB_NAME.match(name)
        return ("CronJob", match["cronjob"]) if match else None
    return None


def resolve_top_owner(pod: Raw, owners: OwnerIndex) -> tuple[str, str] | None:
    """Follow ``controller: true`` ownerReferences from a pod to its top owner.

    Owner objects present in ``owners`` are followed by their own references;
    absent ones are inferred with :func:`infer_parent`. A static pod's owner is
    its ``Node``; a pod without a controller has no owner (a bare pod).
    """
    ref = controller_ref(pod)
    if ref is None:
        return None
    namespace = object_namespace(pod)
    labels = object_labels(pod)
    for _ in range(10):  # owner chains are short; this bounds a malformed cycle
        key = (ref[0], namespace, ref[1])
        parent = owners[key] if key in owners else infer_parent(ref[0], ref[1], labels)
        if parent is None:
            return ref
        ref = parent
    return ref
