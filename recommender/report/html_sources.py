"""Read the outputs ``netpol report`` draws: policy trees and the JSON of other commands.

``--from`` takes a ``recommend`` output folder (policy YAML + SUMMARY.md), a
``tighten`` folder (with TIGHTEN.json), a folder holding both policies and a
``shadow --json`` report (``netpol demo`` writes one), or a single JSON file of
``shadow``, ``tighten``, ``diff`` or ``recommend --json``. JSON files are told
apart by their top-level keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from recommender.errors import InputError
from recommender.model import NetworkPolicy
from recommender.policy_io.policy_yaml import dump_policy_yaml, load_policies
from recommender.recommend.stability_render import STATE_COLUMNS, read_state_table
from recommender.report.html_model import (
    Edge,
    ReportData,
    Table,
    add_policies,
    cell,
    index_groups,
    policy_view,
    workload_node,
)


@dataclass
class Sources:
    """What was read: policies and JSON documents by kind (shadow, tighten, diff, recommend)."""

    paths: list[str] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    documents: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    #: Group rows of the evidence sufficiency (``recommend.stability_render.STATE_COLUMNS``).
    states: dict[str, tuple[str, ...]] = field(default_factory=dict)


def classify_json(doc: Mapping[str, Any]) -> str | None:
    """The command that wrote a JSON report, from its keys.

    >>> classify_json({"would_be_denied": [], "totals": {}})
    'shadow'
    >>> classify_json({"changes": [], "universe": {}}), classify_json({"x": 1})
    ('diff', None)
    """
    if "would_be_denied" in doc:
        return "shadow"
    if "changes" in doc and "kept" in doc:
        return "tighten"
    if "changes" in doc and "universe" in doc:
        return "diff"
    if "accounting" in doc and "groups" in doc:
        return "recommend"
    return None


def read_sources(paths: Sequence[str]) -> Sources:
    """Read every path; raise InputError when one holds nothing this report can show."""
    found = Sources(paths=[str(p) for p in paths])
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise InputError(raw, "no such file or directory")
        before = (len(found.policies), len(found.documents))
        yamls = sorted(path.rglob("*.y*ml")) if path.is_dir() else []
        if path.is_file() and path.suffix in (".yaml", ".yml"):
            yamls = [path]
        if yamls:
            found.policies.extend(load_policies([str(p) for p in yamls]).policies)
        summary = path / "SUMMARY.md"
        if path.is_dir() and summary.is_file():
            found.states.update((r[0], r) for r in read_state_table(summary.read_text()))
        jsons = sorted(path.glob("*.json")) if path.is_dir() else []
        for doc_path in jsons or ([path] if path.suffix == ".json" else []):
            _read_json(found, doc_path)
        if (len(found.policies), len(found.documents)) == before:
            raise InputError(raw, "no NetworkPolicies and no shadow/tighten/diff JSON found")
    return found


def _read_json(found: Sources, path: Path) -> None:
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise InputError(str(path), f"not valid JSON: {exc}") from None
    kind = classify_json(doc) if isinstance(doc, dict) else None
    if kind is not None:
        found.documents.append((kind, str(path), doc))


def build_report(sources: Sources, title: str) -> ReportData:
    """The report's data from what was read."""
    data = ReportData(title=title, sources=sources.paths)
    index = index_groups(sources.policies, _document_namespaces(sources))
    add_policies(data, sources.policies, index)
    for p in sorted(sources.policies, key=lambda q: q.key):
        data.policies.append(policy_view(p, dump_policy_yaml(p)))
    if sources.policies:
        data.facts.append(("policies", str(len(sources.policies))))
    states = dict(sources.states)
    for kind, path, doc in sources.documents:
        data.facts.append((f"{kind} report", path))
        ADDERS[kind](data, doc, index)
        if kind == "recommend":
            states.update(recommend_states(doc))
    if states:
        rows = tuple(states[k] for k in sorted(states))
        title = "Evidence sufficiency: the stability state of each group (docs/evidence.md)"
        data.tables.append(Table("evidence", title, STATE_COLUMNS, rows, ("",) * len(rows)))
    return data


def recommend_states(doc: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The group rows of ``recommend --json``'s ``evidence`` (None: an older report)."""
    out = {}
    for g in (doc.get("evidence") or {}).get("groups", []):
        key = f"{g['namespace']}/{g['name']}"
        values = (g["connections"], g["first_seen"], g["last_seen"], g["days_seen"])
        why = "; ".join(g["reasons"]) or "-"
        out[key] = (
            key,
            str(g["state"]),
            *(_short(v) if v is not None else "-" for v in values),
            why,
        )
    return out


def _document_namespaces(sources: Sources) -> set[str]:
    spaces = set()
    for _, _, doc in sources.documents:
        for row in _changes(doc) + list(doc.get("would_be_denied", [])):
            for key in ("src_workload", "dst_workload", "src", "dst"):
                ns, sep, _ = str(row.get(key, "")).partition("/")
                if sep:
                    spaces.add(ns)
    return spaces


def _changes(doc: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "kept" in doc:  # tighten: the semantic diff of before and after
        return list(doc.get("semantic_diff", {}).get("changes", []))
    if "universe" in doc:
        return list(doc.get("changes", []))
    return []


SHADOW_COLUMNS = (
    "src_workload",
    "dst_workload",
    "port",
    "protocol",
    "connections",
    "denied_by",
    "policies",
    "first_seen",
    "last_seen",
    "refs",
)


def add_shadow(data: ReportData, doc: Mapping[str, Any], index: Any) -> None:
    """Would-be-denied edges (red, linked to their row) and the shadow tables."""
    rows = list(doc.get("would_be_denied", []))
    anchors = tuple(f"deny-{i}" for i in range(len(rows)))
    for row, anchor in zip(rows, anchors, strict=True):
        src = workload_node(data, str(row["src_workload"]), index)
        dst = workload_node(data, str(row["dst_workload"]), index)
        ports = (f"{row.get('protocol', '')} {row.get('port', '')}".strip(),)
        data.edges.append(Edge(src, dst, "would_deny", ports, anchor, row.get("connections")))
    data.tables.append(_table("would-deny", "Would be denied (shadow)", rows, anchors))
    for key in ("cni_dropped", "unknown"):
        extra = list(doc.get(key, []))
        if extra:
            data.tables.append(_table(key, f"Shadow: {key}", extra, ("",) * len(extra)))
    for name, value in sorted(doc.get("totals", {}).items()):
        data.facts.append((f"shadow {name}", cell(value)))
    for name, value in sorted(doc.get("ingest", {}).items()):
        data.facts.append((f"ingest {name}", cell(value)))


def _table(tid: str, title: str, rows: list[Any], anchors: tuple[str, ...]) -> Table:
    columns = [c for c in SHADOW_COLUMNS if any(c in r for r in rows)] or sorted(
        {k for r in rows for k in r}
    )
    body = tuple(tuple(_short(r.get(c)) for c in columns) for r in rows)
    return Table(tid, title, tuple(columns), body, anchors)


def _short(value: Any, limit: int = 5) -> str:
    """A cell, with long lists (flow references) cut to ``limit`` items and a count."""
    if isinstance(value, list) and len(value) > limit:
        return f"{cell(value[:limit])} (+{len(value) - limit} more)"
    if isinstance(value, dict):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return cell(value)


def add_changes(data: ReportData, doc: Mapping[str, Any], index: Any) -> None:
    """Semantic changes (diff, or tighten's before/after) as edges and a table."""
    rows = _changes(doc)
    anchors = tuple(f"change-{len(data.tables)}-{i}" for i in range(len(rows)))
    for row, anchor in zip(rows, anchors, strict=True):
        kind = "newly_allowed" if row.get("change") == "allowed" else "newly_denied"
        src = workload_node(data, str(row["src"]), index)
        dst = workload_node(data, str(row["dst"]), index)
        ports = tuple(str(p) for p in row.get("ports", ()))
        data.edges.append(Edge(src, dst, kind, ports, anchor))
    columns = ("change", "src", "dst", "ports", "sides", "old_rules", "new_rules")
    body = tuple(tuple(_short(r.get(c)) for c in columns) for r in rows)
    data.tables.append(
        Table(f"changes-{len(data.tables)}", "Semantic changes", columns, body, anchors)
    )
    for name, value in sorted(doc.get("summary", doc.get("totals", {})).items()):
        data.facts.append((name, _short(value)))


def add_tighten(data: ReportData, doc: Mapping[str, Any], index: Any) -> None:
    """Tighten: its changes and kept rules as tables, its semantic diff as edges."""
    add_changes(data, doc, index)
    for key in ("changes", "kept"):
        rows = list(doc.get(key, []))
        if rows:
            columns = tuple(sorted({k for r in rows for k in r}))
            body = tuple(tuple(_short(r.get(c)) for c in columns) for r in rows)
            data.tables.append(
                Table(f"tighten-{key}", f"Tighten: {key}", columns, body, ("",) * len(rows))
            )


def add_recommend_json(data: ReportData, doc: Mapping[str, Any], index: Any) -> None:
    """``recommend --json``: the groups table."""
    rows = list(doc.get("groups", []))
    columns = ("namespace", "name", "edges", "members", "state")
    body = tuple(tuple(_short(r.get(c)) for c in columns) for r in rows)
    data.tables.append(Table("groups", "Groups", columns, body, ("",) * len(rows)))


ADDERS = {
    "shadow": add_shadow,
    "diff": add_changes,
    "tighten": add_tighten,
    "recommend": add_recommend_json,
}
