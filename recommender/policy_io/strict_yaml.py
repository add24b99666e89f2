"""Read YAML/JSON the way the Kubernetes API server reads it: strictly, with lines.

Kubernetes decodes manifests with ``sigs.k8s.io/yaml`` (a fork of go-yaml v2.4.0)
and, under strict field validation (``kubectl apply``'s default ``--validate=strict``),
"fail[s] the request with a BadRequest error if any unknown fields would be dropped
from the object, or if any duplicate fields are present". PyYAML differs from that
reader in ways that change what a policy means, so this loader:

* refuses a **duplicate key** in any mapping (the YAML spec requires unique keys;
  PyYAML silently keeps the last one, which can turn a restricted rule into
  allow-all). Merge keys (``<<``) are not duplicates.
* keeps **YAML 1.1 number and boolean forms that readers disagree on** as
  :class:`AmbiguousScalar` instead of coercing them, so a typed field refuses them
  (see :data:`AMBIGUOUS_HELP`). go-yaml v2.4.0 ``resolve.go`` reads ``y``/``n``/``on``/
  ``off``/``yes``/``no`` as booleans, strips ``_`` and runs ``strconv.ParseInt(s, 0,
  64)`` (so ``0123`` is octal 83, ``0x50`` is 80, ``0o17`` is 15) and matches floats
  with ``^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$`` (so ``1e3`` is
  1000), but "base-60 floats from YAML 1.1 are purposefully not supported" (``1:20``
  is the string "1:20", where PyYAML reads 80). The safe, strict answer: an integer
  field takes only a plain decimal integer, a string field only a string, and
  anything a reader could take either way must be written unambiguously.
* reads **timestamps** as the strings they are written as: go-yaml v2 keeps a
  timestamp-looking scalar a string when decoding into an untyped value.

Every document keeps its composed node, so an error can name the line of any field
(:func:`locate`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recommender.errors import InputError

_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TOKEN = re.compile(r"([^.\[\]]+)|\[([^\]]*)\]")
_PLAIN_INT = re.compile(r"^-?(0|[1-9][0-9]*)$")
_STRICT_BOOL = frozenset({"true", "True", "TRUE", "false", "False", "FALSE"})
#: Plain scalars PyYAML reads as strings but go-yaml v2 as booleans or numbers.
_GO_ONLY = re.compile(
    r"^(y|Y|n|N"
    r"|[-+]?0[oO][0-7_]+|[-+]?0[xX][0-9a-fA-F_]+|[-+]?0[bB][01_]+"
    r"|[-+]?(\.[0-9_]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9_]+)?)$"
)
_AMBIGUOUS_TAG = "tag:netpol-recommender,2026:ambiguous"

#: Why an ambiguous scalar is refused, by the form it has.
AMBIGUOUS_HELP = {
    "bool": "a YAML 1.1 boolean",
    "base60": "a YAML 1.1 base-60 number; Kubernetes reads it as a string",
    "octal": "a YAML 1.1 octal number",
    "int": "a YAML 1.1 number not written as a plain decimal integer",
    "go": "a number to Kubernetes' YAML reader but a string to PyYAML",
}


@dataclass(frozen=True)
class AmbiguousScalar:
    """A plain scalar that YAML readers decode differently (``on``, ``1:20``, ``0123``).

    It is neither a string nor a number, so every typed field refuses it.

    >>> AmbiguousScalar("on", "bool").describe()
    '`on` (a YAML 1.1 boolean; quote it)'
    >>> AmbiguousScalar("1:20", "base60", 80).describe()
    '`1:20` (a YAML 1.1 base-60 number; Kubernetes reads it as a string; PyYAML reads 80; \
write it in decimal, or quote it)'
    """

    text: str
    form: str  # a key of AMBIGUOUS_HELP
    reads_as: int | None = None  # what a YAML 1.1 reader makes of an int form

    def __repr__(self) -> str:
        return self.text

    def describe(self) -> str:
        """What it is and how to write it unambiguously."""
        fix = "quote it" if self.form == "bool" else "write it in decimal, or quote it"
        value = "" if self.reads_as is None else f"; PyYAML reads {self.reads_as}"
        return f"`{self.text}` ({AMBIGUOUS_HELP[self.form]}{value}; {fix})"


class DuplicateKeyError(yaml.MarkedYAMLError):  # type: ignore[misc]
    """A mapping names the same key twice."""


@dataclass(frozen=True)
class Document:
    """One non-empty document of a file: 1-based index, decoded object, composed node."""

    index: int
    obj: Any
    node: Any  # yaml.Node, or None when the file was read as plain JSON


class StrictLoader(_Base):  # type: ignore[misc]
    """PyYAML safe loader with the Kubernetes-compatible changes of this module."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        tag: str = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and implicit[0]:
            if tag == "tag:yaml.org,2002:str" and _GO_ONLY.match(value):
                return _AMBIGUOUS_TAG
            if tag == "tag:yaml.org,2002:timestamp":
                return "tag:yaml.org,2002:str"
        return tag

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        _check_unique_keys(self, node)
        return super().construct_mapping(node, deep=deep)


def _check_unique_keys(loader: StrictLoader, node: Any) -> None:
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:
            continue  # an unhashable key: the constructor reports it
        if first is not key_node:
            raise DuplicateKeyError(
                "while reading a mapping",
                node.start_mark,
                f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                key_node.start_mark,
            )


def _construct_int(loader: StrictLoader, node: Any) -> Any:
    text = node.value
    if _PLAIN_INT.match(text):
        return int(text)
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    digits = text.lstrip("+-").replace("_", "")
    form = (
        "base60"
        if ":" in text
        else "octal"
        if digits[:1] == "0" and digits[1:2].isdigit()
        else "int"
    )
    return AmbiguousScalar(text, form, value)


def _construct_bool(loader: StrictLoader, node: Any) -> Any:
    if node.value in _STRICT_BOOL:
        return node.value.lower() == "true"
    return AmbiguousScalar(node.value, "bool")


def _construct_ambiguous(loader: StrictLoader, node: Any) -> Any:
    # y/n are YAML 1.1 booleans too (yaml.org/type/bool.html); PyYAML leaves them out.
    return AmbiguousScalar(node.value, "bool" if node.value in ("y", "Y", "n", "N") else "go")


StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
StrictLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
StrictLoader.add_constructor(_AMBIGUOUS_TAG, _construct_ambiguous)


def read_documents(path: str) -> list[Document]:
    """Every non-empty document of a YAML or JSON file, strictly decoded.

    Raises
    ------
    InputError
        Unreadable file, invalid YAML/JSON, or a duplicate key (with its line).
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not UTF-8 text (byte {exc.start})") from exc
    try:
        return list(_compose_all(text))
    except DuplicateKeyError as exc:
        raise InputError(
            path, f"invalid YAML: {exc.problem}", line=exc.problem_mark.line + 1
        ) from exc
    except yaml.YAMLError as exc:
        if path.endswith(".json") or text.lstrip()[:1] in ("{", "["):
            return _json_documents(path, text, exc)
        raise _yaml_error(path, exc) from exc
    except RecursionError as exc:
        raise InputError(path, "invalid YAML: nested too deeply") from exc


def _compose_all(text: str) -> Iterator[Document]:
    loader = StrictLoader(text)
    try:
        index = 0
        while loader.check_node():
            index += 1
            node = loader.get_node()
            try:
                obj = loader.construct_document(node)
            except (ValueError, TypeError, OverflowError) as exc:
                # PyYAML's constructors raise these for explicit tags such as `!!float x`.
                raise yaml.constructor.ConstructorError(
                    None, None, f"cannot construct a value: {exc}", node.start_mark
                ) from exc
            if obj is not None:
                yield Document(index, obj, node)
    finally:
        loader.dispose()


def _yaml_error(path: str, exc: yaml.YAMLError) -> InputError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    text = " ".join(str(getattr(exc, "problem", None) or exc).split())  # one line
    return InputError(path, f"invalid YAML: {text}", line=line)


def _json_documents(path: str, text: str, yaml_exc: yaml.YAMLError) -> list[Document]:
    """JSON that PyYAML cannot compose (tabs, ...): plain JSON, duplicates still refused."""
    try:
        obj = json.loads(text, object_pairs_hook=_unique_pairs)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from exc
    except ValueError as exc:  # a duplicate key, from _unique_pairs
        raise InputError(path, f"invalid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InputError(path, "invalid JSON: nested too deeply") from exc
    return [] if obj is None else [Document(1, obj, None)]


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


# ---------------------------------------------------------------------------
# Locating fields
# ---------------------------------------------------------------------------


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
        step = child(node, name or index, not name)
        if step is None:
            break
        line, node = step
    return line + 1


def child(node: Any, key: str, bracket: bool) -> tuple[int, Any] | None:
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


def item_node(node: Any, key: str, index: int) -> Any:
    """The node of ``node[key][index]`` (a List's items), or None."""
    step = child(node, key, False)
    items = step[1] if step is not None else None
    if isinstance(items, yaml.SequenceNode) and index < len(items.value):
        return items.value[index]
    return None
