"""Validation: one case per API-server rule the JSON schema misses (FORMATS.md 4.2)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from recommender.semantics.validate import (
    Finding,
    check_policy_dict,
    is_label_key,
    is_port_name,
    parse_cidr,
    schema_findings,
)

BASE = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "NetworkPolicy",
    "metadata": {"name": "ok", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}],
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
    },
}


def _with(path: str, value) -> dict:
    """BASE with the dotted ``path`` (list indices as numbers) set to ``value``."""
    obj = copy.deepcopy(BASE)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = obj
    for key in parents:
        node = node[key]
    node[last] = value
    return obj


def _errors(obj) -> list[tuple[str, str]]:
    return [(f.id, f.path) for f in check_policy_dict(obj) if f.severity == "error"]


def test_base_policy_is_clean():
    assert check_policy_dict(BASE) == []
    assert schema_findings(BASE) == []


R0 = "spec.ingress[0]"
CASES = [
    ("name-not-dns-subdomain", "metadata.name", "Bad_Name", ("NP101", "metadata.name")),
    ("name-too-long", "metadata.name", "a" * 254, ("NP101", "metadata.name")),
    ("name-missing", "metadata.name", "", ("NP100", "metadata.name")),
    ("namespace-not-dns-label", "metadata.namespace", "a.b", ("NP102", "metadata.namespace")),
    ("label-key-bad", "metadata.labels", {"-x": "1"}, ("NP103", "metadata.labels[-x]")),
    (
        "label-key-prefix-bad",
        "metadata.labels",
        {"A_B/x": "1"},
        ("NP103", "metadata.labels[A_B/x]"),
    ),
    ("label-value-bad", "metadata.labels", {"app": "a b"}, ("NP104", "metadata.labels[app]")),
    (
        "label-value-too-long",
        "metadata.labels",
        {"app": "a" * 64},
        ("NP104", "metadata.labels[app]"),
    ),
    ("label-value-not-string", "metadata.labels", {"v": 1}, ("NP100", "metadata.labels")),
    (
        "selector-label-bad",
        "spec.podSelector.matchLabels",
        {"app": "-x"},
        ("NP104", "spec.podSelector.matchLabels[app]"),
    ),
    ("policy-type-unknown", "spec.policyTypes", ["Ingres"], ("NP105", "spec.policyTypes[0]")),
    (
        "policy-types-too-many",
        "spec.policyTypes",
        ["Ingress", "Egress", "Ingress"],
        ("NP105", "spec.policyTypes"),
    ),
    (
        "protocol-icmp",
        "spec.ingress.0.ports.0.protocol",
        "ICMP",
        ("NP106", f"{R0}.ports[0].protocol"),
    ),
    (
        "protocol-lowercase",
        "spec.ingress.0.ports.0.protocol",
        "tcp",
        ("NP106", f"{R0}.ports[0].protocol"),
    ),
    ("port-too-big", "spec.ingress.0.ports.0.port", 70000, ("NP107", f"{R0}.ports[0].port")),
    ("port-zero", "spec.ingress.0.ports.0.port", 0, ("NP107", f"{R0}.ports[0].port")),
    (
        "port-name-numeric-string",
        "spec.ingress.0.ports.0.port",
        "80",
        ("NP108", f"{R0}.ports[0].port"),
    ),
    (
        "port-name-too-long",
        "spec.ingress.0.ports.0.port",
        "a" * 16,
        ("NP108", f"{R0}.ports[0].port"),
    ),
    (
        "port-name-double-dash",
        "spec.ingress.0.ports.0.port",
        "a--b",
        ("NP108", f"{R0}.ports[0].port"),
    ),
    ("port-bool", "spec.ingress.0.ports.0.port", True, ("NP100", f"{R0}.ports[0].port")),
    (
        "end-port-below-port",
        "spec.ingress.0.ports.0",
        {"port": 80, "endPort": 79},
        ("NP109", f"{R0}.ports[0].endPort"),
    ),
    (
        "end-port-named",
        "spec.ingress.0.ports.0",
        {"port": "http", "endPort": 90},
        ("NP109", f"{R0}.ports[0].endPort"),
    ),
    (
        "end-port-without-port",
        "spec.ingress.0.ports.0",
        {"endPort": 90},
        ("NP109", f"{R0}.ports[0].endPort"),
    ),
    (
        "end-port-too-big",
        "spec.ingress.0.ports.0",
        {"port": 80, "endPort": 70000},
        ("NP109", f"{R0}.ports[0].endPort"),
    ),
    (
        "cidr-invalid",
        "spec.egress.0.to.0.ipBlock.cidr",
        "10.0.0.300/8",
        ("NP110", "spec.egress[0].to[0].ipBlock.cidr"),
    ),
    (
        "cidr-bare-address",
        "spec.egress.0.to.0.ipBlock.cidr",
        "10.0.0.1",
        ("NP110", "spec.egress[0].to[0].ipBlock.cidr"),
    ),
    (
        "except-outside",
        "spec.egress.0.to.0.ipBlock.except",
        ["11.0.0.0/16"],
        ("NP111", "spec.egress[0].to[0].ipBlock.except[0]"),
    ),
    (
        "except-equal-not-strict",
        "spec.egress.0.to.0.ipBlock.except",
        ["10.0.0.0/8"],
        ("NP111", "spec.egress[0].to[0].ipBlock.except[0]"),
    ),
    (
        "except-other-family",
        "spec.egress.0.to.0.ipBlock.except",
        ["2001:db8::/64"],
        ("NP111", "spec.egress[0].to[0].ipBlock.except[0]"),
    ),
    (
        "except-invalid",
        "spec.egress.0.to.0.ipBlock.except",
        ["nope"],
        ("NP110", "spec.egress[0].to[0].ipBlock.except[0]"),
    ),
    (
        "operator-unknown",
        "spec.podSelector",
        {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]},
        ("NP112", "spec.podSelector.matchExpressions[0].operator"),
    ),
    (
        "in-without-values",
        "spec.podSelector",
        {"matchExpressions": [{"key": "a", "operator": "In"}]},
        ("NP113", "spec.podSelector.matchExpressions[0].values"),
    ),
    (
        "notin-empty-values",
        "spec.podSelector",
        {"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]},
        ("NP113", "spec.podSelector.matchExpressions[0].values"),
    ),
    (
        "exists-with-values",
        "spec.podSelector",
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        ("NP113", "spec.podSelector.matchExpressions[0].values"),
    ),
    (
        "expression-key-bad",
        "spec.podSelector",
        {"matchExpressions": [{"key": "a b", "operator": "Exists"}]},
        ("NP103", "spec.podSelector.matchExpressions[0].key"),
    ),
    (
        "selector-typo",
        "spec.podSelector",
        {"matchLabel": {"a": "b"}},
        ("NP100", "spec.podSelector.matchLabel"),
    ),
    (
        "peer-mixes-ipblock-and-selector",
        "spec.egress.0.to.0",
        {"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}},
        ("NP114", "spec.egress[0].to[0]"),
    ),
    ("peer-empty", "spec.ingress.0.from.0", {}, ("NP115", "spec.ingress[0].from[0]")),
    (
        "peer-null-selector-only",
        "spec.ingress.0.from.0",
        {"podSelector": None},
        ("NP115", "spec.ingress[0].from[0]"),
    ),
    ("rule-unknown-field", "spec.ingress.0", {"to": []}, ("NP100", "spec.ingress[0].to")),
    (
        "annotation-key-bad",
        "metadata.annotations",
        {"bad key": "x"},
        ("NP116", "metadata.annotations[bad key]"),
    ),
    ("wrong-kind", "kind", "Deployment", ("NP117", "kind")),
]


@pytest.mark.parametrize(
    ("path", "value", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_each_check(path, value, expected):
    assert expected in _errors(_with(path, value))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("spec.ingress.0.ports.0", {"protocol": "SCTP", "port": "sig-1"}),
        ("spec.ingress.0.ports.0", {"port": 1, "endPort": 65535}),
        ("spec.ingress.0.ports.0", {"protocol": "UDP"}),
        ("spec.egress.0.to.0.ipBlock", {"cidr": "2001:db8::/32", "except": ["2001:db8::/48"]}),
        (
            "spec.podSelector",
            {
                "matchLabels": None,
                "matchExpressions": [
                    {"key": "a", "operator": "DoesNotExist"},
                    {"key": "b", "operator": "NotIn", "values": ["x"]},
                ],
            },
        ),
        ("spec.ingress.0.from.0", {"namespaceSelector": {}, "podSelector": {}}),
        ("metadata.labels", {"example.com/tier": "", "a": "A-b_c.1"}),
        ("spec.policyTypes", ["Egress"]),
    ],
    ids=[
        "sctp-named",
        "full-range",
        "protocol-only",
        "ipv6-except",
        "expressions",
        "ns-and-pod",
        "labels",
        "egress-only",
    ],
)
def test_valid_variants_have_no_errors(path, value):
    assert _errors(_with(path, value)) == []


def test_host_bits_warn_not_error():
    findings = check_policy_dict(_with("spec.egress.0.to.0.ipBlock.cidr", "10.0.1.1/4"))
    assert findings == [
        Finding(
            "warning",
            "NP150",
            "spec.egress[0].to[0].ipBlock.cidr",
            "10.0.1.1/4 is not canonical; it means 0.0.0.0/4",
        )
    ]


def test_missing_spec_warns():
    obj = {k: v for k, v in BASE.items() if k != "spec"}
    assert [(f.severity, f.id) for f in check_policy_dict(obj)] == [("warning", "NP152")]


def test_non_object():
    assert [f.id for f in check_policy_dict(["x"])] == ["NP100"]


def test_schema_findings_catch_unknown_field_with_path():
    found = schema_findings(_with("spec.podSelector", {"matchLabel": {"a": "b"}}))
    assert [(f.id, f.path) for f in found] == [("NP160", "spec.podSelector")]
    assert "matchLabel" in found[0].message


def test_schema_findings_catch_wrong_type():
    found = schema_findings(_with("spec.ingress.0.ports.0.port", True))
    assert found[0].path == "spec.ingress.0.ports.0.port"


def test_schema_passes_what_only_our_checks_catch():
    """FORMATS.md 4.2: the strict schema still passes these; our checks do not."""
    for path, value in [
        ("metadata.name", "Bad_Name"),
        ("spec.policyTypes", ["Ingres"]),
        ("spec.ingress.0.ports.0.port", 70000),
        ("spec.ingress.0.ports.0.protocol", "ICMP"),
    ]:
        obj = _with(path, value)
        assert schema_findings(obj) == []
        assert _errors(obj)


def test_parse_cidr_is_sloppy_like_the_api_server():
    assert str(parse_cidr("10.0.1.1/4")) == "0.0.0.0/4"
    assert str(parse_cidr("2001:db8::1/32")) == "2001:db8::/32"
    assert str(parse_cidr("010.0.0.0/8")) == "10.0.0.0/8"
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_cidr("10.0.0.0")


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        ("app", True),
        ("a/b", True),
        ("/b", False),
        ("a" * 64, False),
        ("x." + "a" * 252 + "/b", False),
        ("x." + "a" * 251 + "/b", True),
    ],
)
def test_label_keys(key, ok):
    assert is_label_key(key) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [("http", True), ("h2c", True), ("1-2", False), ("web-", False), ("a" * 15, True)],
)
def test_port_names(name, ok):
    assert is_port_name(name) is ok
