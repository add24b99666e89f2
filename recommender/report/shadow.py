"""Shadow-mode report: one content model, rendered as Markdown for people and JSON for machines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from recommender.shadow.core import ShadowRun

MAX_LIST = 200


def build_report(
    run: ShadowRun,
    uncovered: Mapping[str, Sequence[str]],
    inputs: Mapping[str, Any],
    ingest: Mapping[str, Any],
) -> dict[str, Any]:
    """The report content (plain JSON-able data)."""
    edges = run.edge_table()
    t = run.totals
    report: dict[str, Any] = {
        "inputs": dict(inputs),
        "ingest": dict(ingest),
        "totals": {
            "records": t.records,
            "request_records": t.requests,
            "reply_records": t.replies,
            "connections": t.connections,
            "connections_by_verdict": dict(sorted(t.by_verdict.items())),
            "cni_dropped_records": t.cni_dropped,
            "would_deny_connections": t.would_deny,
            "gate_records": t.gate_denials,
        },
        "would_be_denied": _rows(edges, edges["outcome"] == "denied") if len(edges) else [],
        "unknown": _rows(edges, edges["outcome"] == "unknown") if len(edges) else [],
        "cni_dropped": _rows(edges, edges["outcome"] == "cni_dropped") if len(edges) else [],
        "uncovered_pods": {d: list(v) for d, v in sorted(uncovered.items())},
    }
    if run.baseline is not None:
        changed = (
            edges[
                (edges["baseline"].notna())
                & (edges["outcome"] != "cni_dropped")
                & (edges["outcome"] != edges["baseline"])
            ]
            if len(edges)
            else edges
        )
        report["verdict_changes"] = _rows(changed, None) if len(edges) else []
    return report


def _rows(frame: pd.DataFrame, mask: Any) -> list[dict[str, Any]]:
    sel = frame if mask is None else frame[mask]
    out = []
    for row in sel.to_dict(orient="records"):
        row["port"] = None if pd.isna(row["port"]) else int(row["port"])
        out.append(row)
    return out


def render_markdown(report: Mapping[str, Any]) -> str:
    """The human report."""
    t = report["totals"]
    lines = ["# Shadow-mode report", ""]
    for key, value in report["inputs"].items():
        shown = ", ".join(value) if isinstance(value, list) else value
        lines.append(f"- {key}: {shown}")
    lines += [
        "",
        "## Summary",
        "",
        f"- flow records: {t['records']:,} ({t['request_records']:,} requests, "
        f"{t['reply_records']:,} reply packets judged with their connection)",
        f"- connections: {t['connections']:,}; by candidate verdict: "
        + (", ".join(f"{k} {v:,}" for k, v in t["connections_by_verdict"].items()) or "none"),
        f"- observed connections the candidate would deny: **{t['would_deny_connections']:,}**",
        f"- records the CNI already dropped for policy: {t['cni_dropped_records']:,}",
        "",
    ]
    lines += _edge_section("Would be denied", report["would_be_denied"], True)
    if "verdict_changes" in report:
        lines += _change_section(report["verdict_changes"])
    lines += _uncovered_section(report["uncovered_pods"])
    lines += _edge_section("Unknown (endpoints could not be resolved)", report["unknown"], False)
    lines += _edge_section("Already dropped by the CNI", report["cni_dropped"], False)
    ingest = report.get("ingest") or {}
    if ingest:
        lines += ["## Input", ""] + [f"- {k}: {v}" for k, v in ingest.items()] + [""]
    return "\n".join(lines).rstrip() + "\n"


def _edge_section(title: str, rows: Sequence[Mapping[str, Any]], deciding: bool) -> list[str]:
    lines = [f"## {title} ({len(rows)} edges)", ""]
    if not rows:
        return [*lines, "None.", ""]
    head = "| source | destination | port | connections | records | first seen | last seen |"
    sep = "|---|---|---|---:|---:|---|---|"
    if deciding:
        head += " denied by | policies |"
        sep += "---|---|"
    lines += [head, sep]
    for r in rows[:MAX_LIST]:
        line = (
            f"| {r['src_workload']} | {r['dst_workload']} | {_port(r)} | "
            f"{r['connections']:,} | {r['records']:,} | {r['first_seen']} | {r['last_seen']} |"
        )
        if deciding:
            line += f" {r['denied_by']} | {', '.join(r['policies'])} |"
        lines.append(line)
    if len(rows) > MAX_LIST:
        lines.append(f"\n... and {len(rows) - MAX_LIST} more (see the JSON report)")
    return [*lines, ""]


def _change_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [f"## Verdict changes from the baseline ({len(rows)} edges)", ""]
    if not rows:
        return [*lines, "None: every observed edge keeps its verdict.", ""]
    lines += [
        "| source | destination | port | baseline | candidate | connections |",
        "|---|---|---|---|---|---:|",
    ]
    for r in rows[:MAX_LIST]:
        lines.append(
            f"| {r['src_workload']} | {r['dst_workload']} | {_port(r)} | "
            f"{r['baseline']} | {r['outcome']} | {r['connections']:,} |"
        )
    return [*lines, ""]


def _uncovered_section(uncovered: Mapping[str, Sequence[str]]) -> list[str]:
    lines = ["## Pods no policy covers", ""]
    for direction, pods in uncovered.items():
        shown = ", ".join(pods[:50]) + (f" ... (+{len(pods) - 50})" if len(pods) > 50 else "")
        lines.append(f"- {direction}: {len(pods)}" + (f": {shown}" if pods else ""))
    return [*lines, ""]


def _port(r: Mapping[str, Any]) -> str:
    return f"{r['port']}/{r['protocol']}" if r["port"] is not None else str(r["protocol"])
