"""Cluster inventory from ``kubectl get ... -o json`` files (and the shared assembly).

Accepted shapes (FORMATS.md 2.7.1): a ``kind: List`` whose items carry their
own kind, the API's typed lists (``PodList`` ...) whose items do not, single
objects, and multi-document YAML. Kinds the inventory does not use are skipped
and counted; a malformed file or object is an :class:`InputError` naming the
file and the item.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recommender.errors import InputError
from recommender.inventory import k8s_objects as k8s
from recommender.inventory.k8s_defaults import default_object
from recommender.inventory.k8s_validation import CLUSTER_SCOPED, check_object, show
from recommender.labels import namespace_labels
from recommender.model import EndpointSlice, Inventory, Namespace, Node, Pod, Service
from recommender.policy_io.atomic import write_bytes_atomic

#: Kinds that become inventory objects.
INVENTORY_KINDS: frozenset[str] = frozenset(
    {"Namespace", "Pod", "Service", "EndpointSlice", "Node", "NetworkPolicy"}
)


@dataclass(frozen=True)
class InventoryLoad:
    """An inventory plus what the reader had to report about its input.

    Attributes
    ----------
    inventory
        The objects.
    skipped_kinds
        Kinds that were neither inventory objects nor owners, with counts.
    synthesized_namespaces
        Namespaces that objects referenced but the input did not contain.
    duplicates
        Objects seen more than once (the last one read wins).
    portless_endpoint_ports
        EndpointSlice ports with ``port: null`` ("all ports"), left out.
    """

    inventory: Inventory
    skipped_kinds: Mapping[str, int] = field(default_factory=dict)
    synthesized_namespaces: tuple[str, ...] = ()
    duplicates: int = 0
    portless_endpoint_ports: int = 0

    @property
    def warnings(self) -> tuple[str, ...]:
        """Human-readable warnings, in a fixed order."""
        out = []
        if self.skipped_kinds:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(self.skipped_kinds.items()))
            total = sum(self.skipped_kinds.values())
            out.append(f"skipped {total} objects of unused kinds: {kinds}")
        if self.synthesized_namespaces:
            names = ", ".join(self.synthesized_namespaces)
            out.append(
                f"{len(self.synthesized_namespaces)} namespaces referenced but absent "
                f"from the inventory were synthesised: {names}"
            )
        if self.duplicates:
            out.append(f"{self.duplicates} objects appeared more than once; the last copy was kept")
        if self.portless_endpoint_ports:
            out.append(
                f"{self.portless_endpoint_ports} EndpointSlice ports without a port "
                "number (all ports) were left out"
            )
        return tuple(out)


@dataclass(frozen=True)
class RawItem:
    """One raw object and where it came from (for located errors)."""

    source: str
    where: str  # "item 3", "document 2", "document 2 item 5"
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def label(self) -> str:
        """``Pod shop/web-1``, ``Namespace shop``; names the API would refuse are quoted."""
        kind = self.kind or "no kind"
        meta = self.obj.get("metadata")
        name = meta.get("name") if isinstance(meta, Mapping) else None
        if not isinstance(name, str) or not name:
            return kind
        if kind in CLUSTER_SCOPED:
            return f"{kind} {_shown_name(name)}"
        namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
        return f"{kind} {_shown_name(namespace or 'default')}/{_shown_name(name)}"

    def error(self, reason: str, hint: str | None = None) -> InputError:
        where = f"{self.where} " if self.where else ""
        return InputError(self.source, f"{where}({self.label}): {reason}", hint=hint)


_PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,80}")


def _shown_name(value: object) -> str:
    """A name as is when it is plain text, else quoted and escaped (one line, bounded)."""
    if isinstance(value, str) and _PLAIN_NAME.fullmatch(value) and ".." not in value:
        return value
    return show(value)


# ---------------------------------------------------------------------------
# Documents -> items
# ---------------------------------------------------------------------------


def _expand_document(doc: Any, source: str, where: str) -> Iterator[RawItem]:
    """Yield the objects of one document: a List, a typed list or a single object.

    The API's typed lists (``PodList``) carry no per-item ``apiVersion``/``kind``;
    kubectl's ``List`` does. Items without a kind take it from a typed list.
    """
    if doc is None:
        return
    if not isinstance(doc, Mapping):
        raise InputError(
            source, f"{where}: expected a Kubernetes object or List, got {type(doc).__name__}"
        )
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind:
        raise InputError(
            source,
            f"{where}: object without a kind",
            hint="expected `kubectl get ... -o json` output",
        )
    if not (kind.endswith("List") and "items" in doc):
        yield RawItem(source, where, doc)
        return
    items = doc.get("items") or []
    if not isinstance(items, list):
        raise InputError(source, f"{where}: 'items' of a {kind} must be a list")
    item_kind = kind[: -len("List")]
    for i, item in enumerate(items):
        at = f"{where} item {i}" if where else f"item {i}"
        if isinstance(item, Mapping) and not item.get("kind") and item_kind:
            item = {"apiVersion": doc.get("apiVersion"), "kind": item_kind, **item}
        elif not isinstance(item, Mapping) or not item.get("kind"):
            raise InputError(source, f"{at}: a {kind} item without a kind")
        yield RawItem(source, at, item)


def _load_documents(path: str) -> list[tuple[str, Any]]:
    """Parse a JSON or (multi-document) YAML file into ``(where, document)`` pairs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read: {exc}") from None
    if text.lstrip().startswith(("{", "[")):
        try:
            return [("", json.loads(text))]
        except json.JSONDecodeError as exc:
            raise InputError(path, f"invalid JSON: {exc.msg}", line=exc.lineno) from None
        except RecursionError:
            raise InputError(path, "invalid JSON: nested too deeply") from None
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        raise InputError(
            path, f"invalid YAML: {' '.join(str(reason).split())}", line=line
        ) from None
    except (ValueError, RecursionError) as exc:
        # PyYAML's constructors raise ValueError for values such as a date 2024-13-01.
        raise InputError(
            path, f"invalid YAML: {' '.join(str(exc).split()) or 'nested too deeply'}"
        ) from None
    if len(docs) == 1:
        return [("", docs[0])]
    return [(f"document {i + 1}", d) for i, d in enumerate(docs)]


def iter_file_items(path: str) -> Iterator[RawItem]:
    """Every object in one inventory file."""
    for where, doc in _load_documents(path):
        yield from _expand_document(doc, path, where)


# ---------------------------------------------------------------------------
# Items -> Inventory
# ---------------------------------------------------------------------------


def _dedupe(items: list[RawItem]) -> list[RawItem]:
    """Keep the last copy of each (kind, namespace, name), in first-seen order."""
    latest: dict[tuple[str, str, str], RawItem] = {}
    for item in items:
        try:
            key = (item.kind, k8s.object_namespace(item.obj), k8s.object_name(item.obj))
        except k8s.ItemError as exc:
            raise item.error(str(exc)) from None
        latest[key] = item
    return list(latest.values())


class _Builder:
    """Collects parsed objects, sorted on output."""

    def __init__(self, owners: k8s.OwnerIndex) -> None:
        self.owners = owners
        self.namespaces: list[Namespace] = []
        self.pods: list[Pod] = []
        self.services: list[Service] = []
        self.slices: list[EndpointSlice] = []
        self.nodes: list[Node] = []
        self.policies: list[Mapping[str, Any]] = []
        self.portless = 0

    def add(self, item: RawItem) -> None:
        obj = item.obj
        kind = item.kind
        if kind == "Namespace":
            self.namespaces.append(k8s.parse_namespace(obj))
        elif kind == "Pod":
            self.pods.append(k8s.parse_pod(obj, k8s.resolve_top_owner(obj, self.owners)))
        elif kind == "Service":
            self.services.append(k8s.parse_service(obj))
        elif kind == "EndpointSlice":
            slice_, portless = k8s.parse_endpoint_slice(obj)
            self.slices.append(slice_)
            self.portless += portless
        elif kind == "Node":
            self.nodes.append(k8s.parse_node(obj))
        elif kind == "NetworkPolicy":
            self.policies.append(_with_namespace(obj))

    def referenced_namespaces(self) -> set[str]:
        names = {p.namespace for p in self.pods} | {s.namespace for s in self.services}
        names |= {s.namespace for s in self.slices}
        return names | {k8s.object_namespace(p) for p in self.policies}


def _with_namespace(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a policy with ``metadata.namespace`` filled in."""
    meta = dict(obj.get("metadata") or {})
    meta.setdefault("namespace", k8s.object_namespace(obj))
    return {**obj, "metadata": meta}


def _build(items: list[RawItem]) -> _Builder:
    """Parse deduplicated inventory and owner items; owners first, then the rest."""
    owner_items = [i for i in items if i.kind in k8s.OWNER_KINDS]
    owners: dict[tuple[str, str, str], tuple[str, str] | None] = {}
    for item in owner_items:
        try:
            owners.update(k8s.index_owners([item.obj]))
        except k8s.ItemError as exc:
            raise item.error(str(exc)) from None
    builder = _Builder(owners)
    for item in items:
        if item.kind in INVENTORY_KINDS:
            try:
                builder.add(item)
            except k8s.ItemError as exc:
                raise item.error(str(exc)) from None
    return builder


def _sorted_inventory(builder: _Builder, sources: tuple[str, ...]) -> Inventory:
    return Inventory(
        namespaces=tuple(sorted(builder.namespaces, key=lambda n: n.name)),
        pods=tuple(sorted(builder.pods, key=lambda p: (p.namespace, p.name))),
        services=tuple(sorted(builder.services, key=lambda s: (s.namespace, s.name))),
        endpoint_slices=tuple(sorted(builder.slices, key=lambda s: (s.namespace, s.name))),
        nodes=tuple(sorted(builder.nodes, key=lambda n: n.name)),
        network_policies=tuple(sorted(builder.policies, key=_policy_key)),
        sources=sources,
    )


def _policy_key(policy: Mapping[str, Any]) -> tuple[str, str]:
    return k8s.object_namespace(policy), k8s.object_name(policy)


def validate_items(items: list[RawItem]) -> None:
    """Refuse objects the API server would never accept (see ``k8s_validation``).

    Raises
    ------
    InputError
        For the first problem, naming the file, the item and the field; the hint
        counts the others.
    """
    problems = [
        (item, f"{field}: {reason}") for item in items for field, reason in check_object(item.obj)
    ]
    if problems:
        item, reason = problems[0]
        more = len(problems) - 1
        hint = (
            f"{more} more invalid field{'s' if more > 1 else ''} in the inventory" if more else None
        )
        raise item.error(reason, hint)


def load_items(items: list[RawItem], sources: tuple[str, ...]) -> InventoryLoad:
    """Assemble located raw objects into an inventory plus warnings.

    Kinds the inventory does not use are counted before anything else is
    checked, so a Kustomization or ConfigMap never fails a read. The others get
    the API server's defaults, then its validation (an object the API would
    refuse is an :class:`InputError` naming it), then are parsed.
    """
    used = [
        RawItem(i.source, i.where, default_object(i.obj))
        for i in items
        if i.kind in INVENTORY_KINDS or i.kind in k8s.OWNER_KINDS
    ]
    skipped = Counter(
        i.kind for i in items if i.kind not in INVENTORY_KINDS and i.kind not in k8s.OWNER_KINDS
    )
    validate_items(used)
    kept = _dedupe(used)
    builder = _build(kept)
    present = {n.name for n in builder.namespaces}
    missing = sorted(builder.referenced_namespaces() - present)
    builder.namespaces += [Namespace(n, namespace_labels(n, {})) for n in missing]
    return InventoryLoad(
        _sorted_inventory(builder, sources),
        dict(sorted(skipped.items())),
        tuple(missing),
        len(used) - len(kept),
        builder.portless,
    )


def parse_inventory(items: Iterable[Mapping[str, Any]], source: str) -> InventoryLoad:
    """Parse raw objects (each with its ``kind``) into an inventory plus warnings.

    Parameters
    ----------
    items
        Kubernetes objects as plain dicts, as in a ``kubectl`` List.
    source
        Where they came from, for error messages and ``Inventory.sources``.

    Raises
    ------
    InputError
        An object is malformed (the message names the item).
    """
    wrapped: list[RawItem] = []
    for i, obj in enumerate(items):
        wrapped.extend(_expand_document(obj, source, f"item {i}"))
    return load_items(wrapped, (source,))


def parse_inventory_items(items: Iterable[Mapping[str, Any]], source: str) -> Inventory:
    """The one raw-JSON parser (files and the live API): objects -> :class:`Inventory`."""
    return parse_inventory(items, source).inventory


def load_inventory(paths: Sequence[str | os.PathLike[str]]) -> InventoryLoad:
    """Read inventory files (JSON or YAML) into one inventory plus warnings.

    Objects found in several files are kept once (the last file wins).
    """
    if not paths:
        raise InputError(None, "no inventory file given")
    names = tuple(str(p) for p in paths)
    items = [item for name in names for item in iter_file_items(name)]
    return load_items(items, names)


def read_inventory(paths: Sequence[str | os.PathLike[str]]) -> Inventory:
    """Read inventory files into an :class:`Inventory`.

    Raises
    ------
    InputError
        A file is missing, unreadable or malformed.
    """
    return load_inventory(paths).inventory


# ---------------------------------------------------------------------------
# Writing a List document
# ---------------------------------------------------------------------------


def _item_sort_key(obj: Mapping[str, Any]) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (
        str(obj.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(obj.get("apiVersion") or ""),
    )


def render_inventory_list(items: list[dict[str, Any]]) -> bytes:
    """Render objects as one kubectl-style ``List`` JSON document, deterministically.

    Items are sorted by kind, namespace and name, keys are sorted, and
    ``metadata.managedFields`` is dropped (kubectl hides it by default too).

    >>> pods = [{"kind": "Pod", "metadata": {"name": n}} for n in ("b", "a")]
    >>> doc = json.loads(render_inventory_list(pods))
    >>> doc["kind"], [item["metadata"]["name"] for item in doc["items"]]
    ('List', ['a', 'b'])
    """
    cleaned = []
    for obj in items:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
        cleaned.append({**obj, "metadata": meta})
    doc = {
        "apiVersion": "v1",
        "items": sorted(cleaned, key=_item_sort_key),
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def write_inventory_json(
    items: list[dict[str, Any]], path: str | os.PathLike[str], force: bool = False
) -> Path:
    """Write objects as a List JSON file atomically; refuse to overwrite without ``force``."""
    return write_bytes_atomic(path, render_inventory_list(items), force=force)
