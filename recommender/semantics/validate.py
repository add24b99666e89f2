"""NetworkPolicy validation beyond the JSON schema (FORMATS.md section 4.2).

The offline schemas in ``kubernetes-validate`` are structural only: they pass
``metadata.name: Bad_Name``, ``policyTypes: [Ingres]``, ``port: 70000`` and
``protocol: ICMP``. The API server rejects those in Go
(``pkg/apis/networking/validation``). :func:`check_policy_dict` re-implements
those rules on the decoded dict so every finding carries the field path;
:func:`schema_findings` wraps the JSON-schema check.

Severity ``error`` means the API server would reject the object; ``warning``
means it would accept it but the author probably meant something else (for
example a CIDR with host bits set, which the API server masks).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from recommender.vocabulary import PROTOCOLS

Severity = Literal["error", "warning"]

#: kubernetes-validate schema version used by :func:`schema_findings`.
SCHEMA_VERSION = "1.37.0"

# Matched with ``fullmatch``: ``$`` alone also matches before a trailing newline,
# which would pass ``"web\n"`` as a name or label value.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_LABEL_RE = re.compile(_DNS_LABEL)
_DNS_SUBDOMAIN_RE = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
_QUALIFIED_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_SVC_NAME_RE = re.compile(r"[-a-z0-9]+")

POLICY_TYPES = ("Ingress", "Egress")
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Finding:
    """One validation result: severity, stable id (``NP1xx``), field path, message."""

    severity: Severity
    id: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity} {self.id} {self.path}: {self.message}"


def _err(id_: str, path: str, message: str) -> Finding:
    return Finding("error", id_, path, message)


# ---------------------------------------------------------------------------
# Syntax predicates (apimachinery/pkg/util/validation)
# ---------------------------------------------------------------------------


def is_dns1123_subdomain(value: str) -> bool:
    """RFC 1123 subdomain, at most 253 characters.

    >>> is_dns1123_subdomain("allow-dns.v2"), is_dns1123_subdomain("Bad_Name")
    (True, False)
    """
    return len(value) <= 253 and bool(_DNS_SUBDOMAIN_RE.fullmatch(value))


def is_dns1123_label(value: str) -> bool:
    """RFC 1123 label, at most 63 characters.

    >>> is_dns1123_label("shop"), is_dns1123_label("a.b")
    (True, False)
    """
    return len(value) <= 63 and bool(_DNS_LABEL_RE.fullmatch(value))


def is_label_key(key: str) -> bool:
    """``[prefix/]name``: prefix a DNS-1123 subdomain, name <= 63 chars.

    >>> is_label_key("app.kubernetes.io/name"), is_label_key("-app"), is_label_key("a/b/c")
    (True, False, False)
    """
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and is_dns1123_subdomain(prefix)):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME_RE.fullmatch(name))


def is_label_value(value: str) -> bool:
    """Empty, or <= 63 chars of alnum, ``-_.`` starting and ending alnum.

    >>> is_label_value(""), is_label_value("v1.2_x"), is_label_value("a b"), is_label_value("a\\n")
    (True, True, False, False)
    """
    return len(value) <= 63 and bool(_LABEL_VALUE_RE.fullmatch(value))


def is_port_name(name: str) -> bool:
    """IANA_SVC_NAME: <= 15 chars, lowercase alnum and '-', a letter, no edge or double '-'.

    >>> [is_port_name(n) for n in ("http", "dns-tcp", "80", "-http", "a--b", "HTTP")]
    [True, True, False, False, False, False]
    """
    return (
        0 < len(name) <= 15
        and bool(_SVC_NAME_RE.fullmatch(name))
        and re.search("[a-z]", name) is not None
        and not name.startswith("-")
        and not name.endswith("-")
        and "--" not in name
    )


def parse_cidr(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Parse a CIDR as the API server does (``ParseCIDRSloppy``): host bits masked.

    IPv4 octets with leading zeros are read as decimal, as Go's sloppy parser does.

    >>> parse_cidr("10.0.1.1/4")
    IPv4Network('0.0.0.0/4')
    >>> parse_cidr("010.001.0.0/16")
    IPv4Network('10.1.0.0/16')

    Raises
    ------
    ValueError
        Not a CIDR (a bare address without ``/`` is not one).
    """
    addr, slash, prefix = text.partition("/")
    if not slash or not prefix.isdigit() or not prefix.isascii():
        raise ValueError(f"{text!r} is not a CIDR (address/prefix-length)")
    return ipaddress.ip_network(f"{_unpad_ipv4(addr)}/{int(prefix)}", strict=False)


def _unpad_ipv4(addr: str) -> str:
    """Drop leading zeros of dotted-quad octets, as Go's sloppy parsers read them (decimal)."""
    parts = addr.split(".")
    if ":" not in addr and len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts):
        return ".".join(str(int(p)) for p in parts)
    return addr


def parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Parse an IP address as the API server does (``netutils.ParseIPSloppy``).

    Leading zeros in IPv4 octets are decimal; a zone (``fe80::1%eth0``) is not an IP.

    >>> parse_ip("010.0.0.1"), parse_ip("fd00::1")
    (IPv4Address('10.0.0.1'), IPv6Address('fd00::1'))

    Raises
    ------
    ValueError
        Not an IP address.
    """
    if "%" in text or "/" in text:
        raise ValueError(f"{text!r} is not an IP address")
    return ipaddress.ip_address(_unpad_ipv4(text))


# ---------------------------------------------------------------------------
# Policy checks
# ---------------------------------------------------------------------------


def check_policy_dict(obj: Any) -> list[Finding]:
    """Every finding for one NetworkPolicy dict, errors and warnings, in field order.

    >>> [f.id for f in check_policy_dict({"apiVersion": "networking.k8s.io/v1",
    ...   "kind": "NetworkPolicy", "metadata": {"name": "Bad_Name"}, "spec": {}})]
    ['NP101']
    """
    if not isinstance(obj, Mapping):
        return [_err("NP100", "<document>", "must be an object")]
    if obj.get("kind") != "NetworkPolicy":
        return [_err("NP117", "kind", f"{obj.get('kind')!r} is not NetworkPolicy")]
    return list(_check_meta(obj.get("metadata"))) + list(_check_spec(obj.get("spec")))


def _check_meta(meta: Any) -> Iterator[Finding]:
    if not isinstance(meta, Mapping):
        yield _err("NP100", "metadata", "required object is missing")
        return
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        yield _err("NP100", "metadata.name", "required string is missing")
    elif not is_dns1123_subdomain(name):
        yield _err("NP101", "metadata.name", f"{name!r} is not a DNS-1123 subdomain (<= 253)")
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or not is_dns1123_label(ns)):
        yield _err("NP102", "metadata.namespace", f"{ns!r} is not a DNS-1123 label")
    yield from _check_label_map(meta.get("labels"), "metadata.labels")
    annotations = meta.get("annotations")
    if annotations is not None:
        if not _is_str_map(annotations):
            yield _err("NP100", "metadata.annotations", "must map strings to strings")
        else:
            for key in annotations:
                if not is_label_key(key):
                    yield _err("NP116", f"metadata.annotations[{key}]", "invalid annotation key")


def _is_str_map(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def _check_label_map(labels: Any, path: str) -> Iterator[Finding]:
    if labels is None:
        return
    if not _is_str_map(labels):
        yield _err("NP100", path, "must map strings to strings (quote numbers and booleans)")
        return
    for key, value in labels.items():
        if not is_label_key(key):
            yield _err("NP103", f"{path}[{key}]", f"invalid label key {key!r}")
        if not is_label_value(value):
            yield _err("NP104", f"{path}[{key}]", f"invalid label value {value!r}")


def _check_spec(spec: Any) -> Iterator[Finding]:
    if spec is None:
        yield Finding("warning", "NP152", "spec", "no spec: selects every pod, denies all ingress")
        return
    if not isinstance(spec, Mapping):
        yield _err("NP100", "spec", "must be an object")
        return
    yield from check_selector(spec.get("podSelector"), "spec.podSelector")
    for direction, peer_key in (("ingress", "from"), ("egress", "to")):
        yield from _check_rules(spec.get(direction), f"spec.{direction}", peer_key)
    yield from _check_policy_types(spec.get("policyTypes"))


def _check_policy_types(types: Any) -> Iterator[Finding]:
    if types is None:
        return
    if not isinstance(types, list):
        yield _err("NP100", "spec.policyTypes", "must be a list")
        return
    if len(types) > 2:
        yield _err("NP105", "spec.policyTypes", "may not specify more than two policyTypes")
        return
    for i, value in enumerate(types):
        if value not in POLICY_TYPES:
            yield _err("NP105", f"spec.policyTypes[{i}]", f"{value!r} is not Ingress or Egress")


def check_selector(sel: Any, path: str) -> Iterator[Finding]:
    """Findings for one ``metav1.LabelSelector`` (null is fine: it is optional)."""
    if sel is None:
        return
    if not isinstance(sel, Mapping):
        yield _err("NP100", path, "must be an object")
        return
    for key in sel:
        if key not in ("matchLabels", "matchExpressions"):
            yield _err("NP100", f"{path}.{key}", "unknown field (matchLabels or matchExpressions?)")
    yield from _check_label_map(sel.get("matchLabels"), f"{path}.matchLabels")
    exprs = sel.get("matchExpressions")
    if exprs is None:
        return
    if not isinstance(exprs, list):
        yield _err("NP100", f"{path}.matchExpressions", "must be a list")
        return
    for i, expr in enumerate(exprs):
        yield from _check_requirement(expr, f"{path}.matchExpressions[{i}]")


def _check_requirement(expr: Any, path: str) -> Iterator[Finding]:
    if not isinstance(expr, Mapping) or not isinstance(expr.get("key"), str):
        yield _err("NP100", path, "needs a string key and an operator")
        return
    if not is_label_key(expr["key"]):
        yield _err("NP103", f"{path}.key", f"invalid label key {expr['key']!r}")
    values = expr.get("values")
    if values is not None and not (
        isinstance(values, list) and all(isinstance(v, str) for v in values)
    ):
        yield _err("NP100", f"{path}.values", "must be a list of strings")
        return
    operator = expr.get("operator")
    if operator not in OPERATORS:
        known = ", ".join(OPERATORS)
        yield _err("NP112", f"{path}.operator", f"{operator!r} is not one of {known}")
    elif operator in ("In", "NotIn") and not values:
        yield _err("NP113", f"{path}.values", f"must be non-empty when operator is {operator}")
    elif operator in ("Exists", "DoesNotExist") and values:
        yield _err("NP113", f"{path}.values", f"must be empty when operator is {operator}")
    for j, value in enumerate(values or ()):
        if not is_label_value(value):
            yield _err("NP104", f"{path}.values[{j}]", f"invalid label value {value!r}")


def _check_rules(rules: Any, path: str, peer_key: str) -> Iterator[Finding]:
    if rules is None:
        return
    if not isinstance(rules, list):
        yield _err("NP100", path, "must be a list")
        return
    for i, rule in enumerate(rules):
        if rule is None:
            continue
        if not isinstance(rule, Mapping):
            yield _err("NP100", f"{path}[{i}]", "must be an object")
            continue
        for key in rule:
            if key not in (peer_key, "ports"):
                yield _err("NP100", f"{path}[{i}].{key}", f"unknown field ({peer_key} or ports?)")
        yield from _check_list(rule.get("ports"), f"{path}[{i}].ports", check_port)
        yield from _check_list(rule.get(peer_key), f"{path}[{i}].{peer_key}", check_peer)


def _check_list(items: Any, path: str, check: Any) -> Iterator[Finding]:
    if items is None:
        return
    if not isinstance(items, list):
        yield _err("NP100", path, "must be a list")
        return
    for i, item in enumerate(items):
        yield from check(item, f"{path}[{i}]")


def check_port(port: Any, path: str) -> Iterator[Finding]:
    """Findings for one ``NetworkPolicyPort`` (ValidateNetworkPolicyPort)."""
    if port is None:
        return
    if not isinstance(port, Mapping):
        yield _err("NP100", path, "must be an object")
        return
    protocol, number, end = port.get("protocol"), port.get("port"), port.get("endPort")
    if protocol is not None and protocol not in PROTOCOLS:
        yield _err("NP106", f"{path}.protocol", f"{protocol!r} is not TCP, UDP or SCTP")
    if end is not None and (not isinstance(end, int) or isinstance(end, bool)):
        yield _err("NP100", f"{path}.endPort", "must be an integer")
        return
    if number is None:
        if end is not None:
            yield _err("NP109", f"{path}.endPort", "may not be specified when `port` is not")
    elif isinstance(number, bool) or not isinstance(number, int | str):
        yield _err("NP100", f"{path}.port", "must be an integer or a port name")
    elif isinstance(number, int):
        if not 1 <= number <= 65535:
            yield _err("NP107", f"{path}.port", f"{number} is not in 1-65535")
        if end is not None and end < number:
            yield _err("NP109", f"{path}.endPort", "must be greater than or equal to `port`")
        if end is not None and not 1 <= end <= 65535:
            yield _err("NP109", f"{path}.endPort", f"{end} is not in 1-65535")
    else:
        if end is not None:
            yield _err("NP109", f"{path}.endPort", "may not be specified when `port` is named")
        if not is_port_name(number):
            yield _err("NP108", f"{path}.port", f"{number!r} is not a valid port name")


def check_peer(peer: Any, path: str) -> Iterator[Finding]:
    """Findings for one ``NetworkPolicyPeer`` (ValidateNetworkPolicyPeer)."""
    if not isinstance(peer, Mapping):
        yield _err("NP115", path, "must specify a peer")
        return
    for key in peer:
        if key not in ("podSelector", "namespaceSelector", "ipBlock"):
            yield _err("NP100", f"{path}.{key}", "unknown field")
    kinds = ("podSelector", "namespaceSelector", "ipBlock")
    present = [k for k in kinds if peer.get(k) is not None]
    # "numPeers == 0 -> must specify a peer"; a null selector does not count.
    if not present:
        yield _err("NP115", path, "must specify a peer")
    elif len(present) > 1 and "ipBlock" in present:
        yield _err("NP114", path, "may not specify both ipBlock and another peer")
    yield from check_selector(peer.get("podSelector"), f"{path}.podSelector")
    yield from check_selector(peer.get("namespaceSelector"), f"{path}.namespaceSelector")
    if peer.get("ipBlock") is not None:
        yield from check_ip_block(peer["ipBlock"], f"{path}.ipBlock")


def check_ip_block(block: Any, path: str) -> Iterator[Finding]:
    """Findings for one ``IPBlock`` (ValidateIPBlock): cidr valid, except strictly inside."""
    if not isinstance(block, Mapping) or not isinstance(block.get("cidr"), str):
        yield _err("NP100", f"{path}.cidr", "required string is missing")
        return
    outer = yield from _cidr(block["cidr"], f"{path}.cidr")
    excepts = block.get("except")
    if excepts is not None and not (
        isinstance(excepts, list) and all(isinstance(e, str) for e in excepts)
    ):
        yield _err("NP100", f"{path}.except", "must be a list of strings")
        return
    for i, text in enumerate(excepts or ()):
        inner = yield from _cidr(text, f"{path}.except[{i}]")
        if outer is None or inner is None:
            continue
        # "!cidrIPNet.Contains(exceptCIDR.IP) || cidrMaskLen >= exceptMaskLen -> must be a
        # strict subset of `cidr`"; a different address family is never contained.
        if (
            inner.version != outer.version
            or inner.network_address not in outer
            or inner.prefixlen <= outer.prefixlen
        ):
            yield _err("NP111", f"{path}.except[{i}]", f"{text} is not strictly inside {outer}")


def _cidr(
    text: str, path: str
) -> Generator[Finding, None, ipaddress.IPv4Network | ipaddress.IPv6Network | None]:
    """Yield findings for one CIDR and return the parsed network (None if invalid)."""
    try:
        net = parse_cidr(text)
    except ValueError as exc:
        yield _err("NP110", path, str(exc))
        return None
    if str(net) != text:
        yield Finding("warning", "NP150", path, f"{text} is not canonical; it means {net}")
    return net


# ---------------------------------------------------------------------------
# JSON schema (kubernetes-validate, offline)
# ---------------------------------------------------------------------------


def schema_findings(obj: Mapping[str, Any], version: str = SCHEMA_VERSION) -> list[Finding]:
    """Run ``kubernetes_validate.validate(obj, version, strict=True)`` as findings.

    Strict mode rejects unknown fields such as a misspelt ``matchLabel``. About
    20 ms per object, so callers run it for lint, not on every load.
    """
    import kubernetes_validate

    try:
        kubernetes_validate.validate(dict(obj), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<document>"
        return [_err("NP160", path, f"schema: {exc.message}")]
    except (kubernetes_validate.SchemaNotFoundError, KeyError, TypeError) as exc:
        return [_err("NP160", "<document>", f"schema: {exc}")]
    return []
