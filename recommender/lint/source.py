"""Read policy files for lint, keeping invalid policies and the YAML node of each document.

Unlike :func:`recommender.io.policy_yaml.load_policies`, an invalid policy does
not stop the run: lint reports its validation findings (``NP1xx``) and judges
the valid policies. Each document keeps its YAML node so a finding can name the
line of the field it is about (:func:`locate`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recommender.errors import InputError, PolicyError
from recommender.io.policy_yaml import ACCEPTED_API_VERSIONS, parse_policy, policy_files
from recommender.model import NetworkPolicy
from recommender.validate import Finding, check_policy_dict

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")


@dataclass(frozen=True)
class PolicyDoc:
    """One NetworkPolicy object as read: where, the raw dict, and the model when valid."""

    file: str
    doc: int  # 1-based document index in the file
    prefix: str  # "items[3]." inside a List, else ""
    raw: Any
    policy: NetworkPolicy | None  # None when the API server would reject it
    findings: tuple[Finding, ...]  # validation findings (NP1xx)
    node: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """``namespace/name`` as far as the raw object tells."""
        if self.policy is not None:
            return self.policy.key
        meta = self.raw.get("metadata") if isinstance(self.raw, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        return f"{meta.get('namespace') or '?'}/{meta.get('name') or '?'}"

    def line(self, path: str = "") -> int | None:
        """1-based line of a field path (``spec.ingress[0].from[1]``) or of the object."""
        return locate(self.node, path)


def locate(node: Any, path: str) -> int | None:
    """Line of the deepest field of ``path`` that exists under ``node`` (1-based).

    A mapping field gives the line of its key, a list item the line of the item.

    >>> n = yaml.compose("a:\\n  b:\\n  - x: 1\\n  - y: 2\\n")
    >>> locate(n, "a.b[1].y"), locate(n, "a.b[7]"), locate(n, "a.b"), locate(n, "")
    (4, 2, 2, 1)
    """
    if node is None:
        return None
    line = int(node.start_mark.line)
    for name, index in _TOKEN.findall(path):
        step = _child(node, name or index, not name)
        if step is None:
            break
        line, node = step
    return line + 1


def _child(node: Any, key: str, bracket: bool) -> tuple[int, Any] | None:
    """(line, node) one step down: a list item by index, or a mapping value by key."""
    if isinstance(node, yaml.SequenceNode) and bracket and key.isdigit():
        i = int(key)
        if i < len(node.value):
            return int(node.value[i].start_mark.line), node.value[i]
        return None
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return int(k.start_mark.line), v
    return None


def file_nodes(path: str) -> list[tuple[int, Any, Any]]:
    """``(document index, node, object)`` of every non-empty document of a file."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from exc
    loader = _Loader(text)
    out = []
    try:
        index = 0
        while loader.check_node():
            index += 1
            node = loader.get_node()
            obj = loader.construct_document(node)
            if obj is not None:
                out.append((index, node, obj))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(path, f"invalid YAML: {getattr(exc, 'problem', exc)}", line=line) from exc
    finally:
        loader.dispose()
    return out


def read_policy_docs(paths: Sequence[str],
                     default_namespace: str | None = None) -> tuple[list[PolicyDoc], int]:
    """Every NetworkPolicy document in ``paths``, valid or not; plus the count of other objects.

    Raises
    ------
    InputError
        A path is missing, or a file is not valid YAML/JSON.
    """
    docs: list[PolicyDoc] = []
    skipped = 0
    for path in policy_files(paths):
        for index, node, obj in file_nodes(path):
            skipped += _collect(docs, path, index, node, obj, "", default_namespace)
    return docs, skipped


def _collect(docs: list[PolicyDoc], path: str, index: int, node: Any, obj: Any, prefix: str,
             default_namespace: str | None) -> int:
    if isinstance(obj, dict) and str(obj.get("kind") or "").endswith("List") \
            and isinstance(obj.get("items"), list):
        step = _child(node, "items", False)
        items = step[1] if step is not None else None
        skipped = 0
        for i, item in enumerate(obj["items"]):
            sub = items.value[i] if isinstance(items, yaml.SequenceNode) else None
            skipped += _collect(docs, path, index, sub, item, f"{prefix}items[{i}].",
                                default_namespace)
        return skipped
    if not isinstance(obj, dict) or obj.get("kind") != "NetworkPolicy" \
            or obj.get("apiVersion") not in ACCEPTED_API_VERSIONS:
        return 1
    findings = tuple(check_policy_dict(obj))
    policy = None
    if not any(f.severity == "error" for f in findings):
        try:
            policy = parse_policy(obj, path, index, default_namespace)
        except (PolicyError, KeyError, TypeError, AttributeError):
            policy = None  # the findings say why
    if policy is not None:
        where = f"{path}#{index}{'/' + prefix.rstrip('.') if prefix else ''}"
        policy = NetworkPolicy(**{**policy.__dict__, "source": where})
    docs.append(PolicyDoc(path, index, prefix, obj, policy, findings, node))
    return 0


def locate_error(exc: PolicyError) -> PolicyError:
    """The same error with the line of its field, when the file can be read again."""
    if exc.path is None or exc.doc is None or exc.line is not None:
        return exc
    try:
        nodes = {i: n for i, n, _ in file_nodes(exc.path)}
    except InputError:
        return exc
    line = locate(nodes.get(exc.doc), exc.field)
    return PolicyError(exc.path, exc.field, exc.reason, doc=exc.doc, line=line)
