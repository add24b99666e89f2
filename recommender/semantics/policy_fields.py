"""The closed field sets and field types of a ``networking.k8s.io/v1`` NetworkPolicy.

The API server decodes a manifest into Go structs before it validates anything:
a field of the wrong type fails decoding, and under strict field validation
(``kubectl apply``'s default ``--validate=strict``) so does an unknown field
("fail the request with a BadRequest error if any unknown fields would be
dropped from the object"). The decoder (``sigs.k8s.io/json``) matches field
names case-sensitively, and JSON ``null`` leaves a field unset, so ``null`` is
accepted for every field here.

Field sets follow the API reference (kubernetes.io/docs/reference/kubernetes-api/
policy-resources/network-policy-v1): NetworkPolicy has ``apiVersion``, ``kind``,
``metadata``, ``spec``; ``status`` is accepted too, as clusters of 1.24-1.27
(NetworkPolicyStatus, alpha, since removed) and their ``kubectl get -o yaml``
output carry it. ``metadata`` is ObjectMeta: a closed set of fields whose
``labels`` and ``annotations`` are free-form string maps.

:func:`check_policy_fields` reports unknown fields as ``NP118`` (with the nearest
known name, by :func:`difflib.get_close_matches`) and wrong types as ``NP100``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from recommender.semantics.validate import Finding, check_policy_dict

STR, INT, BOOL, ANY, STR_MAP, INT_OR_STR = (
    "a string",
    "an integer",
    "a boolean",
    "any",
    "a map of strings",
    "an integer or a port name",
)

_SELECTOR: dict[str, Any] = {
    "matchLabels": STR_MAP,
    "matchExpressions": [{"key": STR, "operator": STR, "values": [STR]}],
}
_PEER: dict[str, Any] = {
    "podSelector": _SELECTOR,
    "namespaceSelector": _SELECTOR,
    "ipBlock": {"cidr": STR, "except": [STR]},
}
_PORT: dict[str, Any] = {"protocol": STR, "port": INT_OR_STR, "endPort": INT}
_SPEC: dict[str, Any] = {
    "podSelector": _SELECTOR,
    "policyTypes": [STR],
    "ingress": [{"from": [_PEER], "ports": [_PORT]}],
    "egress": [{"to": [_PEER], "ports": [_PORT]}],
}
_OWNER_REFERENCE: dict[str, Any] = {
    "apiVersion": STR,
    "kind": STR,
    "name": STR,
    "uid": STR,
    "controller": BOOL,
    "blockOwnerDeletion": BOOL,
}
_MANAGED_FIELDS: dict[str, Any] = {
    "apiVersion": STR,
    "fieldsType": STR,
    "fieldsV1": ANY,
    "manager": STR,
    "operation": STR,
    "subresource": STR,
    "time": STR,
}
_METADATA: dict[str, Any] = {
    "name": STR,
    "generateName": STR,
    "namespace": STR,
    "uid": STR,
    "resourceVersion": STR,
    "generation": INT,
    "selfLink": STR,
    "creationTimestamp": STR,
    "deletionTimestamp": STR,
    "deletionGracePeriodSeconds": INT,
    "labels": STR_MAP,
    "annotations": STR_MAP,
    "ownerReferences": [_OWNER_REFERENCE],
    "finalizers": [STR],
    "managedFields": [_MANAGED_FIELDS],
}
NETWORK_POLICY: dict[str, Any] = {
    "apiVersion": STR,
    "kind": STR,
    "metadata": _METADATA,
    "spec": _SPEC,
    "status": ANY,
}


def check_policy_fields(obj: Any, schema: Any = None, path: str = "") -> Iterator[Finding]:
    """Unknown fields (``NP118``) and wrong types (``NP100``) of one NetworkPolicy dict.

    >>> [str(f) for f in check_policy_fields({"spec": {"ingres": [], "podSelector": []}})]
    ['error NP118 spec.ingres: unknown field "ingres" (did you mean "ingress"?)', \
'error NP100 spec.podSelector: must be an object, not a list']
    """
    schema = NETWORK_POLICY if schema is None else schema
    if obj is None or schema == ANY:
        return
    if isinstance(schema, dict):
        yield from _check_object(obj, schema, path)
    elif isinstance(schema, list):
        yield from _check_list(obj, schema[0], path)
    elif schema == STR_MAP:
        yield from _check_str_map(obj, path)
    elif not _has_type(obj, schema):
        yield _wrong(path, schema, obj)


def _check_object(obj: Any, schema: Mapping[str, Any], path: str) -> Iterator[Finding]:
    if not isinstance(obj, Mapping):
        yield _wrong(path or "<document>", "an object", obj)
        return
    prefix = f"{path}." if path else ""
    for key, value in obj.items():
        sub = schema.get(key) if isinstance(key, str) else None
        if sub is None:
            yield unknown_field(
                f"{prefix}{key!r}" if not isinstance(key, str) else prefix + key, key, schema
            )
        else:
            yield from check_policy_fields(value, sub, prefix + key)


def _check_list(obj: Any, item: Any, path: str) -> Iterator[Finding]:
    if not isinstance(obj, list):
        yield _wrong(path, "a list", obj)
        return
    for i, value in enumerate(obj):
        yield from check_policy_fields(value, item, f"{path}[{i}]")


def _check_str_map(obj: Any, path: str) -> Iterator[Finding]:
    if not isinstance(obj, Mapping):
        yield _wrong(path, STR_MAP, obj)
        return
    for key, value in obj.items():
        if not isinstance(key, str):
            yield _wrong(f"{path}[{key!r}]", "a string key", key)
        elif not isinstance(value, str):
            yield _wrong(f"{path}[{key}]", STR, value)


def _has_type(value: Any, expected: str) -> bool:
    if expected == STR:
        return isinstance(value, str)
    if expected == BOOL:
        return isinstance(value, bool)
    is_int = isinstance(value, int) and not isinstance(value, bool)
    return is_int or (expected == INT_OR_STR and isinstance(value, str))


def unknown_field(path: str, key: Any, schema: Mapping[str, Any]) -> Finding:
    """``NP118`` for a field the API does not define, with the nearest known name.

    >>> unknown_field("spec.podselector", "podselector", {"podSelector": 1}).message
    'unknown field "podselector" (did you mean "podSelector"?)'
    """
    known = sorted(schema)
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
    if not close:  # case slips (sigs.k8s.io/json is case-sensitive) score low on ratio()
        close = [k for k in known if k.lower() == str(key).lower()][:1]
    hint = f' (did you mean "{close[0]}"?)' if close else f" (known: {', '.join(known)})"
    return Finding("error", "NP118", path, f'unknown field "{key}"{hint}')


def _wrong(path: str, expected: str, value: Any) -> Finding:
    return Finding("error", "NP100", path, f"must be {expected}, not {describe_value(value)}")


def describe_value(value: Any) -> str:
    """What a decoded value is, in words a YAML author recognises.

    >>> describe_value(True), describe_value(80.0), describe_value({})
    ('a boolean (true)', 'a float (80.0); write an integer', 'an object')
    """
    describe = getattr(value, "describe", None)
    if callable(describe):  # recommender.policy_io.strict_yaml.AmbiguousScalar
        return str(describe())
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, float):
        return f"a float ({value!r}); write an integer"
    if isinstance(value, int):
        return f"a number ({value}); quote it for a string"
    names: dict[type, str] = {str: "a string", dict: "an object", list: "a list"}
    return names.get(type(value), f"a {type(value).__name__}")


def policy_findings(obj: Any) -> list[Finding]:
    """Every finding for one NetworkPolicy dict: fields and types first, then validation.

    The API server decodes before it validates, so a document with a wrong type
    gets only its decoding findings (validation would judge a value it never saw).
    :func:`check_policy_dict` also flags some unknown fields (selectors, rules,
    peers) as ``NP100``; those are reported once, as ``NP118``.
    """
    structure = list(check_policy_fields(obj)) if isinstance(obj, Mapping) else []
    if not any(f.id == "NP100" for f in structure):
        unknown = {f.path for f in structure}
        structure += [f for f in check_policy_dict(obj) if f.path not in unknown]
    return [replace(f, path=printable(f.path), message=printable(f.message)) for f in structure]


def printable(text: str) -> str:
    r"""``text`` with control characters escaped, so an error stays one line.

    >>> printable("app\nrole")
    'app\\nrole'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)
