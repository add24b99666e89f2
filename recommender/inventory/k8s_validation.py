"""Validation of defaulted raw inventory objects against the API server's rules.

An object the API would never accept (a namespace ``a"b``, a label value with a
newline, a 64-character name, a pod IP ``not-an-ip``) is refused at read time,
with the field path, before any stage can turn it into a file name, a label
selector or an SQL literal. The syntax predicates are shared with the policy
validator (:mod:`recommender.semantics.validate`); the rules per field follow
``pkg/apis/core/validation`` and ``pkg/apis/discovery/validation``:

- ``ValidatePodName``, ``ValidateNodeName``, EndpointSlice and workload names:
  ``NameIsDNSSubdomain``; ``ValidateNamespaceName``: ``NameIsDNSLabel``;
- ``ValidateServiceName`` is ``NameIsDNS1035Label`` (a leading letter) unless the
  ``RelaxedServiceNameValidation`` gate (1.34) admits DNS-1123 labels; the reader
  accepts the relaxed rule, so it never refuses a name some cluster accepts;
- ``ValidateLabels``: keys are qualified names (optional DNS-subdomain prefix
  <= 253, name <= 63), values <= 63 characters; Service selectors too;
- ports 1-65535, protocols TCP/UDP/SCTP, port names IANA_SVC_NAME (containers,
  named ``targetPort``) or DNS-1123 labels (Service and EndpointSlice ports);
- addresses parse as IPs (``ParseIPSloppy``), pod CIDRs as CIDRs.

Every function yields ``(field, reason)`` pairs and never raises.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from recommender.semantics.validate import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_label_key,
    is_label_value,
    is_port_name,
    parse_cidr,
    parse_ip,
)
from recommender.vocabulary import PROTOCOLS

Raw = Mapping[str, Any]
Problem = tuple[str, str]

SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
CLUSTER_SCOPED = frozenset({"Namespace", "Node"})
_SHOWN = 60


def show(value: Any) -> str:
    r"""A value for an error message: ``repr``, on one line, at most ~60 characters.

    >>> print(show("a\nb"))
    'a\nb'
    >>> len(show("x" * 100))
    63
    """
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _str_problem(value: Any, field: str) -> Problem | None:
    if not isinstance(value, str):
        return field, f"expected a string, got {show(value)}"
    return None


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def check_labels(labels: Any, field: str) -> Iterator[Problem]:
    """``ValidateLabels``: a string map with valid keys and values (null is fine)."""
    if labels is None:
        return
    if not isinstance(labels, Mapping):
        yield field, f"expected an object, got {show(labels)}"
        return
    for key, value in labels.items():
        at = f"{field}[{show(key)}]"
        if not isinstance(key, str) or not is_label_key(key):
            yield (
                at,
                (
                    "invalid label key: an optional DNS-subdomain prefix (<= 253) and '/', "
                    "then a name of <= 63 alphanumerics, '-', '_' or '.', starting and "
                    "ending with an alphanumeric"
                ),
            )
        elif not isinstance(value, str):
            yield at, f"label values must be strings, got {show(value)}"
        elif not is_label_value(value):
            yield (
                at,
                (
                    f"invalid label value {show(value)}: <= 63 alphanumerics, '-', '_' or "
                    "'.', starting and ending with an alphanumeric (or empty)"
                ),
            )


def _check_name(obj: Raw, kind: str) -> Iterator[Problem]:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    if not isinstance(name, str) or not name:
        yield "metadata.name", "missing or not a string"
    elif kind in ("Namespace", "Service") and not is_dns1123_label(name):
        yield (
            "metadata.name",
            (
                f"{show(name)} is not a DNS-1123 label (<= 63 lowercase "
                "alphanumerics or '-', starting and ending with an alphanumeric)"
            ),
        )
    elif kind not in ("Namespace", "Service") and not is_dns1123_subdomain(name):
        yield (
            "metadata.name",
            (
                f"{show(name)} is not a DNS-1123 subdomain (<= 253 lowercase "
                "alphanumerics, '-' or '.')"
            ),
        )


def check_metadata(obj: Raw) -> Iterator[Problem]:
    """Name (by kind), namespace (a DNS-1123 label) and labels of any object."""
    kind = str(obj.get("kind") or "")
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, Mapping):
        yield "metadata", f"expected an object, got {show(meta)}"
        return
    yield from _check_name(obj, kind)
    meta = meta or {}
    namespace = meta.get("namespace")
    if (
        kind not in CLUSTER_SCOPED
        and namespace not in (None, "")
        and not (isinstance(namespace, str) and is_dns1123_label(namespace))
    ):
        yield "metadata.namespace", f"{show(namespace)} is not a DNS-1123 label"
    yield from check_labels(meta.get("labels"), "metadata.labels")


def check_port_number(value: Any, field: str, optional: bool = False) -> Iterator[Problem]:
    """A port 1-65535 (``bool`` is not a number here); ``optional`` admits null."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        yield field, f"expected a port number 1-65535, got {show(value)}"


def check_protocol(value: Any, field: str) -> Iterator[Problem]:
    if value not in PROTOCOLS:
        yield field, f"{show(value)} is not TCP, UDP or SCTP"


def check_ip(value: Any, field: str) -> Iterator[Problem]:
    """An IP address as ``ParseIPSloppy`` reads it."""
    problem = _str_problem(value, field)
    if problem:
        yield problem
        return
    try:
        parse_ip(value)
    except ValueError:
        yield field, f"{show(value)} is not an IP address"


def list_of(value: Any, field: str, problems: list[Problem]) -> list[tuple[str, Any]]:
    """``(field[i], item)`` for a list; [] and a problem for another type; [] for null."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append((field, f"expected a list, got {show(value)}"))
        return []
    return [(f"{field}[{i}]", item) for i, item in enumerate(value)]


def objects_of(value: Any, field: str, problems: list[Problem]) -> list[tuple[str, Raw]]:
    """The JSON objects of a list, with a problem for anything else."""
    out = []
    for at, item in list_of(value, field, problems):
        if isinstance(item, Mapping):
            out.append((at, item))
        else:
            problems.append((at, f"expected an object, got {show(item)}"))
    return out


def section(obj: Raw, key: str, problems: list[Problem]) -> Raw:
    """A sub-object (``spec``, ``status``), {} when absent, a problem when not an object."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append((key, f"expected an object, got {show(value)}"))
        return {}
    return value


# ---------------------------------------------------------------------------
# Kinds
# ---------------------------------------------------------------------------


def _check_container_ports(spec: Raw, problems: list[Problem]) -> None:
    for group in ("containers", "initContainers"):
        for at, container in objects_of(spec.get(group), f"spec.{group}", problems):
            for where, port in objects_of(container.get("ports"), f"{at}.ports", problems):
                problems.extend(
                    check_port_number(port.get("containerPort"), f"{where}.containerPort")
                )
                problems.extend(check_protocol(port.get("protocol"), f"{where}.protocol"))
                name = port.get("name")
                if name not in (None, "") and not (isinstance(name, str) and is_port_name(name)):
                    problems.append((f"{where}.name", f"{show(name)} is not an IANA_SVC_NAME"))


def _check_optional_name(value: Any, field: str) -> Iterator[Problem]:
    """``spec.nodeName`` and ``spec.serviceAccountName``: DNS-1123 subdomains when set."""
    if value in (None, ""):
        return
    if not isinstance(value, str) or not is_dns1123_subdomain(value):
        yield field, f"{show(value)} is not a DNS-1123 subdomain"


def check_pod(obj: Raw) -> list[Problem]:
    """Pod spec (hostNetwork, nodeName, ports) and status (phase, IPs)."""
    problems: list[Problem] = []
    spec = section(obj, "spec", problems)
    if not isinstance(spec.get("hostNetwork", False), bool):
        problems.append(
            ("spec.hostNetwork", f"expected true or false, got {show(spec['hostNetwork'])}")
        )
    problems.extend(_check_optional_name(spec.get("nodeName"), "spec.nodeName"))
    for key in ("serviceAccountName", "serviceAccount"):
        problems.extend(_check_optional_name(spec.get(key), f"spec.{key}"))
    _check_container_ports(spec, problems)
    status = section(obj, "status", problems)
    if status.get("phase") is not None and not isinstance(status["phase"], str):
        problems.append(("status.phase", f"expected a string, got {show(status['phase'])}"))
    for single, plural in (("podIP", "podIPs"), ("hostIP", "hostIPs")):
        entries = objects_of(status.get(plural), f"status.{plural}", problems)
        ips = [(f"{at}.ip", entry.get("ip")) for at, entry in entries]
        value = status.get(single)
        if ips and ips[0][1] == value:
            # Defaulting made them one value (a dump may hold either): report it once.
            ips[0] = (f"status.{single}/{plural}[0]", value)
        elif value not in (None, ""):
            ips.insert(0, (f"status.{single}", value))
        for at, ip in ips:
            problems.extend(check_ip(ip, at))
    meta = obj.get("metadata") or {}
    for key in ("creationTimestamp", "deletionTimestamp", "uid"):
        if meta.get(key) is not None and (problem := _str_problem(meta[key], f"metadata.{key}")):
            problems.append(problem)
    return problems


def _check_service_port(port: Raw, at: str) -> Iterator[Problem]:
    yield from check_port_number(port.get("port"), f"{at}.port")
    yield from check_protocol(port.get("protocol"), f"{at}.protocol")
    name = port.get("name")
    if name not in (None, "") and not (isinstance(name, str) and is_dns1123_label(name)):
        yield f"{at}.name", f"{show(name)} is not a DNS-1123 label"
    target = port.get("targetPort")
    if type(target) is int and target == port.get("port"):
        return  # defaulted from ``port``, already checked
    if isinstance(target, str):
        if not is_port_name(target):
            yield f"{at}.targetPort", f"{show(target)} is not a port number or IANA_SVC_NAME"
    elif target is not None:
        yield from check_port_number(target, f"{at}.targetPort")


def check_service(obj: Raw) -> list[Problem]:
    """Service type, selector, cluster IPs and ports (after defaulting)."""
    problems: list[Problem] = []
    spec = section(obj, "spec", problems)
    if spec.get("type") not in SERVICE_TYPES:
        problems.append(
            ("spec.type", f"{show(spec.get('type'))} is not one of {', '.join(SERVICE_TYPES)}")
        )
    problems.extend(check_labels(spec.get("selector"), "spec.selector"))
    ips = [("spec.clusterIP", spec.get("clusterIP"))]
    ips += list_of(spec.get("clusterIPs"), "spec.clusterIPs", problems)
    for at, ip in ips:
        if ip not in (None, "", "None"):
            problems.extend(check_ip(ip, at))
    for at, port in objects_of(spec.get("ports"), "spec.ports", problems):
        problems.extend(_check_service_port(port, at))
    if spec.get("externalName") is not None and (
        problem := _str_problem(spec["externalName"], "spec.externalName")
    ):
        problems.append(problem)
    return problems


def _check_address(address: Any, at: str, address_type: Any) -> Iterator[Problem]:
    """An endpoint address of the slice's ``addressType`` (IPv4, IPv6 or FQDN)."""
    if address_type not in ("IPv4", "IPv6"):
        if not isinstance(address, str) or not is_dns1123_subdomain(address):
            yield at, f"{show(address)} is not a DNS-1123 subdomain (FQDN endpoint)"
        return
    found = list(check_ip(address, at))
    if not found and parse_ip(address).version != (4 if address_type == "IPv4" else 6):
        found = [(at, f"{show(address)} is not an {address_type} address")]
    yield from found


def _check_endpoint(entry: Raw, at: str, address_type: Any, problems: list[Problem]) -> None:
    for where, address in list_of(entry.get("addresses"), f"{at}.addresses", problems):
        problems.extend(_check_address(address, where, address_type))
    ref = entry.get("targetRef")
    if ref is not None and not isinstance(ref, Mapping):
        problems.append((f"{at}.targetRef", f"expected an object, got {show(ref)}"))
    for key in ("kind", "name", "namespace"):
        value = ref.get(key) if isinstance(ref, Mapping) else None
        if value is not None and (problem := _str_problem(value, f"{at}.targetRef.{key}")):
            problems.append(problem)
    problems.extend(_check_optional_name(entry.get("nodeName"), f"{at}.nodeName"))
    conditions = entry.get("conditions")
    if conditions is not None and not isinstance(conditions, Mapping):
        problems.append((f"{at}.conditions", f"expected an object, got {show(conditions)}"))


def check_endpoint_slice(obj: Raw) -> list[Problem]:
    """EndpointSlice address type, addresses, target refs and ports."""
    problems: list[Problem] = []
    address_type = obj.get("addressType")
    if address_type not in ADDRESS_TYPES:
        problems.append(
            ("addressType", f"{show(address_type)} is not one of {', '.join(ADDRESS_TYPES)}")
        )
    for at, entry in objects_of(obj.get("endpoints"), "endpoints", problems):
        _check_endpoint(entry, at, address_type, problems)
    for at, port in objects_of(obj.get("ports"), "ports", problems):
        problems.extend(check_port_number(port.get("port"), f"{at}.port", optional=True))
        problems.extend(check_protocol(port.get("protocol"), f"{at}.protocol"))
        name = port.get("name")
        if name != "" and not (isinstance(name, str) and is_dns1123_label(name)):
            problems.append((f"{at}.name", f"{show(name)} is not empty or a DNS-1123 label"))
    return problems


def check_node(obj: Raw) -> list[Problem]:
    """Node IP addresses (InternalIP, ExternalIP) and pod CIDRs."""
    problems: list[Problem] = []
    status = section(obj, "status", problems)
    for at, entry in objects_of(status.get("addresses"), "status.addresses", problems):
        if entry.get("type") in ("InternalIP", "ExternalIP"):
            problems.extend(check_ip(entry.get("address"), f"{at}.address"))
        elif (problem := _str_problem(entry.get("address"), f"{at}.address")) is not None:
            problems.append(problem)
    spec = section(obj, "spec", problems)
    cidrs = list_of(spec.get("podCIDRs"), "spec.podCIDRs", problems)
    if cidrs and cidrs[0][1] == spec.get("podCIDR"):
        cidrs[0] = ("spec.podCIDR/podCIDRs[0]", cidrs[0][1])
    elif spec.get("podCIDR"):
        cidrs.insert(0, ("spec.podCIDR", spec["podCIDR"]))
    for at, cidr in cidrs:
        try:
            parse_cidr(cidr)
        except (ValueError, TypeError, AttributeError):
            problems.append((at, f"{show(cidr)} is not a CIDR"))
    return problems


_CHECKS: dict[str, Callable[[Raw], list[Problem]]] = {
    "Pod": check_pod,
    "Service": check_service,
    "EndpointSlice": check_endpoint_slice,
    "Node": check_node,
}


def check_object(obj: Raw) -> list[Problem]:
    """Every problem of one defaulted object, metadata first, in field order."""
    problems = list(check_metadata(obj))
    if any(field == "metadata" for field, _ in problems):
        return problems
    check = _CHECKS.get(str(obj.get("kind") or ""))
    return problems + (check(obj) if check else [])
