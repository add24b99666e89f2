"""``matrix`` templates in topology documents.

A topology may declare blocks that repeat for every combination of a few
variables (tenants x environments)::

    matrix:
      - vars: {tenant: [acme, globex], env: [dev, prod]}
        derived: {env: {dev: {replicas: 1}, prod: {replicas: 3}}}
        namespaces: {"{tenant}-{env}": {labels: {tenant: "{tenant}", env: "{env}"}}}
        workloads: [...]
        edges: [...]

Every string in the block has ``{var}`` replaced; a string that becomes a
plain number turns into that number, so ``replicas: "{replicas}"`` works.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

SECTIONS: tuple[str, ...] = ("namespaces", "workloads", "services", "edges", "attacks", "externals")


def substitute(value: Any, variables: Mapping[str, str]) -> Any:
    """Replace ``{name}`` in every string of a nested value.

    >>> substitute({"a": ["{x}-1", "{n}"]}, {"x": "acme", "n": "3"})
    {'a': ['acme-1', 3]}
    """
    if isinstance(value, str):
        for name, replacement in variables.items():
            value = value.replace("{" + name + "}", replacement)
        return _number(value)
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {substitute(k, variables): substitute(v, variables) for k, v in value.items()}
    return value


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text) if any(c.isdigit() for c in text) and "." in text else text
    except ValueError:
        return text


def combinations(block: Mapping[str, Any]) -> list[dict[str, str]]:
    """Every assignment of the block's variables, plus derived values.

    >>> combinations({"vars": {"t": ["a", "b"]}, "derived": {"t": {"b": {"n": 2}}}})
    [{'t': 'a'}, {'t': 'b', 'n': '2'}]
    """
    names = list(block["vars"])
    values = [[str(v) for v in block["vars"][n]] for n in names]
    derived = block.get("derived") or {}
    out = []
    for combo in itertools.product(*values):
        assignment = dict(zip(names, combo, strict=True))
        for name, value in list(assignment.items()):
            extra = (derived.get(name) or {}).get(value) or {}
            assignment.update({str(k): str(v) for k, v in extra.items()})
        out.append(assignment)
    return out


def expand_document(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``doc`` with every ``matrix`` block expanded into the plain sections."""
    out: dict[str, Any] = {k: v for k, v in doc.items() if k != "matrix"}
    for section in SECTIONS:
        base = out.get(section)
        out[section] = (
            dict(base or {}) if section in ("namespaces", "externals") else list(base or [])
        )
    for block in doc.get("matrix") or []:
        for assignment in combinations(block):
            for section in SECTIONS:
                part = substitute(block.get(section), assignment)
                if isinstance(part, dict):
                    out[section].update(part)
                elif isinstance(part, list):
                    out[section].extend(part)
    return out
