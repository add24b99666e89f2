"""API-server defaulting of the raw objects the inventory reads.

An inventory dump, a hand-written fixture or a synthetic manifest may leave out
fields that the API server fills in on every write (``targetPort``, ``protocol``,
``type`` ...). The tool must read such an object as the cluster would hold it,
not refuse it, so every object passes through :func:`default_object` before it
is validated and parsed. Each rule quotes its source:

- ``pkg/apis/core/v1/defaults.go`` (``SetDefaults_*``), declarative
  ``+default`` markers and field docs of ``k8s.io/api/core/v1/types.go``;
- ``pkg/apis/discovery/v1/defaults.go`` for EndpointSlices;
- ``pkg/apis/core/v1/conversion.go`` for the singular/plural IP and CIDR fields;
- ``pkg/registry/core/pod/strategy.go`` for the phase of a new pod.

Functions never raise on malformed input: a field of the wrong type is left as
it is, for the validator to report with its path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from recommender.labels import NAMESPACE_NAME_LABEL

Raw = Mapping[str, Any]


def _copy_map(value: Any) -> dict[str, Any] | None:
    """A shallow copy of a JSON object; {} for null/absent; None for another type."""
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else None


def _is_zero_or_empty(value: Any) -> bool:
    """Go's zero IntOrString: absent, ``0`` or ``""`` (``False`` is not an int in JSON)."""
    return value is None or value == "" or (type(value) is int and value == 0)


# ---------------------------------------------------------------------------
# Service
# ---------------------------------------------------------------------------


def _default_service_port(port: Any) -> Any:
    """``SetDefaults_Service``, per port.

    ``if sp.Protocol == "" { sp.Protocol = v1.ProtocolTCP }`` and
    ``if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("")
    { sp.TargetPort = intstr.FromInt32(sp.Port) }``. An absent ``targetPort``
    decodes to ``FromInt32(0)``, so it becomes ``port`` too ("If this is not
    specified, the value of the 'port' field is used (an identity map)").
    """
    if not isinstance(port, Mapping):
        return port
    out = dict(port)
    if out.get("protocol") in (None, ""):
        out["protocol"] = "TCP"
    number = out.get("port")
    if _is_zero_or_empty(out.get("targetPort")) and type(number) is int:
        out["targetPort"] = number
    return out


def _is_externally_accessible(spec: Raw) -> bool:
    """``service.ExternallyAccessible``: LoadBalancer, NodePort, or ClusterIP with externalIPs."""
    kind = spec.get("type")
    external_ips = spec.get("externalIPs")
    return kind in ("LoadBalancer", "NodePort") or (
        kind == "ClusterIP" and isinstance(external_ips, list) and len(external_ips) > 0
    )


def default_service(obj: Raw) -> dict[str, Any]:
    """``SetDefaults_Service``: type, port protocol and targetPort, traffic policies.

    >>> spec = default_service({"kind": "Service", "spec": {"ports": [{"port": 80}]}})["spec"]
    >>> spec["type"], spec["ports"]
    ('ClusterIP', [{'port': 80, 'protocol': 'TCP', 'targetPort': 80}])
    """
    out = dict(obj)
    spec = _copy_map(obj.get("spec"))
    if spec is None:
        return out
    # "if obj.Spec.Type == "" { obj.Spec.Type = v1.ServiceTypeClusterIP }"
    if spec.get("type") in (None, ""):
        spec["type"] = "ClusterIP"
    if isinstance(spec.get("ports"), list):
        spec["ports"] = [_default_service_port(p) for p in spec["ports"]]
    # "Defaults ExternalTrafficPolicy field for externally-accessible service to Global"
    if _is_externally_accessible(spec) and spec.get("externalTrafficPolicy") in (None, ""):
        spec["externalTrafficPolicy"] = "Cluster"
    # "if obj.Spec.InternalTrafficPolicy == nil" for NodePort, LoadBalancer, ClusterIP
    if (
        spec.get("type") in ("NodePort", "LoadBalancer", "ClusterIP")
        and spec.get("internalTrafficPolicy") is None
    ):
        spec["internalTrafficPolicy"] = "Cluster"
    out["spec"] = spec
    return out


# ---------------------------------------------------------------------------
# Pod
# ---------------------------------------------------------------------------


def _default_containers(containers: Any, host_network: bool) -> Any:
    """ContainerPort ``protocol`` (``+default="TCP"``: "Defaults to "TCP"") and hostPort.

    ``SetDefaults_Pod``: "With host networking default all container ports to
    host ports" (``if HostPort == 0 { HostPort = ContainerPort }``).
    """
    if not isinstance(containers, list):
        return containers
    out = []
    for container in containers:
        if isinstance(container, Mapping) and isinstance(container.get("ports"), list):
            ports = [_default_container_port(p, host_network) for p in container["ports"]]
            container = {**container, "ports": ports}
        out.append(container)
    return out


def _default_container_port(port: Any, host_network: bool) -> Any:
    if not isinstance(port, Mapping):
        return port
    out = dict(port)
    if out.get("protocol") in (None, ""):
        out["protocol"] = "TCP"
    if host_network and out.get("hostPort") in (None, 0):
        out["hostPort"] = out.get("containerPort")
    return out


def _ip_of(entry: Any) -> Any:
    return entry.get("ip") if isinstance(entry, Mapping) else None


def reconcile_ips(single: Any, plural: Any) -> tuple[Any, Any]:
    """The singular and plural forms of an address field, as the API's conversion does.

    ``conversion.go`` (NodeSpec, the same rule as PodStatus, kubernetes#88505): "If
    both fields ... are provided and differ, then PodCIDR is authoritative for
    compatibility with older clients", a lone singular value becomes the list,
    and the singular field is the list's 0th entry ("If this field is specified,
    the 0th entry must match the podIP field"). ``plural`` is a list of
    ``{"ip": ...}`` objects.

    >>> reconcile_ips("10.0.0.1", None)
    ('10.0.0.1', [{'ip': '10.0.0.1'}])
    >>> reconcile_ips(None, [{"ip": "10.0.0.2"}, {"ip": "fd00::2"}])[0]
    '10.0.0.2'
    >>> reconcile_ips("10.0.0.1", [{"ip": "10.0.0.9"}])
    ('10.0.0.1', [{'ip': '10.0.0.1'}])
    """
    has_list = isinstance(plural, list) and len(plural) > 0
    if isinstance(single, str) and single:
        if not has_list or _ip_of(plural[0]) != single:
            return single, [{"ip": single}]
        return single, plural
    if has_list and single in (None, "") and isinstance(_ip_of(plural[0]), str):
        return _ip_of(plural[0]), plural
    return single, plural


def default_pod(obj: Raw) -> dict[str, Any]:
    """Pod defaults the inventory relies on.

    ``spec.hostNetwork``: "Default to false". Container port protocol TCP. A pod
    without ``status.phase`` is ``Pending``: ``PrepareForCreate`` sets
    ``pod.Status = api.PodStatus{Phase: api.PodPending}``. ``podIP``/``podIPs``
    and ``hostIP``/``hostIPs`` are reconciled by :func:`reconcile_ips`.

    >>> pod = default_pod({"kind": "Pod", "status": {"podIP": "10.0.0.1"}})
    >>> pod["spec"]["hostNetwork"], pod["status"]["phase"], pod["status"]["podIPs"]
    (False, 'Pending', [{'ip': '10.0.0.1'}])
    """
    out = dict(obj)
    spec = _copy_map(obj.get("spec"))
    if spec is not None:
        if spec.get("hostNetwork") is None:
            spec["hostNetwork"] = False
        host_network = spec.get("hostNetwork") is True
        for group in ("containers", "initContainers"):
            if group in spec:
                spec[group] = _default_containers(spec[group], host_network)
        out["spec"] = spec
    status = _copy_map(obj.get("status"))
    if status is not None:
        if status.get("phase") in (None, ""):
            status["phase"] = "Pending"
        for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
            status[single], status[plural] = reconcile_ips(status.get(single), status.get(plural))
            if status[single] is None and status[plural] is None:
                del status[single], status[plural]
        out["status"] = status
    return out


# ---------------------------------------------------------------------------
# Namespace, EndpointSlice, Node
# ---------------------------------------------------------------------------


def default_namespace(obj: Raw) -> dict[str, Any]:
    """``SetDefaults_Namespace``: ``obj.Labels[v1.LabelMetadataName] = obj.Name``.

    Unconditional (an existing value is overwritten), and only for a named
    namespace ("we can't SetDefaults for nameless namespaces").

    >>> default_namespace({"kind": "Namespace", "metadata": {"name": "shop"}})["metadata"]
    {'name': 'shop', 'labels': {'kubernetes.io/metadata.name': 'shop'}}
    """
    out = dict(obj)
    meta = _copy_map(obj.get("metadata"))
    name = meta.get("name") if meta is not None else None
    if meta is None or not isinstance(name, str) or not name:
        return out
    labels = _copy_map(meta.get("labels"))
    if labels is not None:
        labels[NAMESPACE_NAME_LABEL] = name
        meta["labels"] = labels
    out["metadata"] = meta
    return out


def _default_endpoint_port(port: Any) -> Any:
    """``SetDefaults_EndpointPort``: ``if obj.Name == nil { obj.Name = "" }``,
    ``if obj.Protocol == nil { obj.Protocol = TCP }``.

    Only nil is defaulted (an explicit ``""`` protocol stays, and is invalid). A
    nil ``port`` is not defaulted: "If this is not specified, ports are not
    restricted and must be interpreted in the context of the specific consumer."
    """
    if not isinstance(port, Mapping):
        return port
    out = dict(port)
    if out.get("name") is None:
        out["name"] = ""
    if out.get("protocol") is None:
        out["protocol"] = "TCP"
    return out


def default_endpoint_slice(obj: Raw) -> dict[str, Any]:
    """EndpointSlice port defaults (discovery/v1).

    >>> default_endpoint_slice({"kind": "EndpointSlice", "ports": [{"port": 53}]})["ports"]
    [{'port': 53, 'name': '', 'protocol': 'TCP'}]
    """
    out = dict(obj)
    if isinstance(obj.get("ports"), list):
        out["ports"] = [_default_endpoint_port(p) for p in obj["ports"]]
    return out


def default_node(obj: Raw) -> dict[str, Any]:
    """``spec.podCIDR``/``podCIDRs`` reconciled as ``Convert_v1_NodeSpec_To_core_NodeSpec`` does.

    >>> default_node({"kind": "Node", "spec": {"podCIDR": "10.244.1.0/24"}})["spec"]["podCIDRs"]
    ['10.244.1.0/24']
    """
    out = dict(obj)
    spec = _copy_map(obj.get("spec"))
    if spec is None:
        return out
    cidrs = spec.get("podCIDRs")
    wrapped = [{"ip": c} for c in cidrs] if isinstance(cidrs, list) else cidrs
    single, plural = reconcile_ips(spec.get("podCIDR"), wrapped)
    if single is not None:
        spec["podCIDR"] = single
    if plural is not wrapped:
        spec["podCIDRs"] = [_ip_of(p) for p in plural]
    out["spec"] = spec
    return out


_DEFAULTERS: dict[str, Callable[[Raw], dict[str, Any]]] = {
    "Service": default_service,
    "Pod": default_pod,
    "Namespace": default_namespace,
    "EndpointSlice": default_endpoint_slice,
    "Node": default_node,
}


def default_object(obj: Raw) -> dict[str, Any]:
    """A copy of ``obj`` with the API server's defaults applied (by its ``kind``).

    The input is not modified; kinds without defaults the inventory uses are
    copied as they are.
    """
    defaulter = _DEFAULTERS.get(str(obj.get("kind") or ""))
    return defaulter(obj) if defaulter else dict(obj)
