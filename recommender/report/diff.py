"""Diff report: one JSON-able content model, rendered as text (terminal) and Markdown (PRs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from recommender.diff.core import DiffResult, group_changes

#: Rows shown per section in text and Markdown; JSON always holds everything.
MAX_ROWS = 200
#: Said of a change between a pod and its own node.
OWN_NODE_NOTE = (
    "own node: NetworkPolicy v1 always allows a pod and its node, Cilium policy decides it"
)


def build_report(result: DiffResult, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The report content: inputs, universe, verdict, grouped changes, observed flows."""
    counts = result.counts()
    report: dict[str, Any] = {
        "inputs": dict(inputs),
        "universe": result.universe.describe(),
        "equivalent": result.equivalent,
        "summary": {
            **counts,
            "endpoints_with_changed_side": dict(result.changed_sides),
            "pairs_evaluated": result.pairs_evaluated,
            "decisions": result.decisions,
        },
        "changes": group_changes(result.changes),
    }
    own = sum(1 for c in result.changes if c.own_node)
    if own:
        report["summary"]["own_node_changes"] = own
    if result.flow_changes is not None:
        report["observed_flows"] = {
            "totals": dict(result.flow_totals),
            "changes": list(result.flow_changes),
        }
    return report


def _verdict_line(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    if report["equivalent"]:
        return "EQUIVALENT on this universe: no reachability changes"
    own = s.get("own_node_changes")
    return (
        f"NOT EQUIVALENT: {s['newly_allowed']:,} reachabilities newly allowed, "
        f"{s['newly_denied']:,} newly denied"
        + (f" ({own:,} of them between a pod and its own node)" if own else "")
    )


def _universe_line(u: Mapping[str, Any]) -> str:
    ext = ", ".join(f"{k} {v}" for k, v in u["external_probes"].items()) or "none"
    return (
        f"{u['workloads']} workloads, {u['declared_ports']} declared ports, "
        f"{u['probe_ports']} port probes ({u['observed_ports']} observed ports), "
        f"non-pod probes: {ext} ({u['observed_external_addresses']} observed addresses)"
    )


def _why(row: Mapping[str, Any]) -> str:
    sides = "+".join(row["sides"])
    was = ", ".join(row["old_rules"] or row["old_policies"]) or "no policy isolated it"
    now = ", ".join(row["new_rules"] or row["new_policies"]) or "no policy isolates it"
    verb = "allowed by" if row["change"] == "allowed" else "denied by"
    before = "denied by" if row["change"] == "allowed" else "allowed by"
    if row["change"] == "allowed" and not row["new_rules"]:
        verb = "open:"
    if row["change"] == "denied" and not row["old_rules"]:
        before = "open:"
    own = f"; {OWN_NODE_NOTE}" if row.get("own_node") else ""
    return f"[{sides}] was {before} {was}; now {verb} {now}{own}"


def render_text(report: Mapping[str, Any]) -> str:
    """Terminal output."""
    inp = report["inputs"]
    lines = [
        f"old: {', '.join(inp['old'])} ({inp['old_policies']} policies)",
        f"new: {', '.join(inp['new'])} ({inp['new_policies']} policies)",
        f"universe: {_universe_line(report['universe'])}",
        f"  {report['universe']['definition']}",
        _verdict_line(report),
    ]
    for change, title in (("allowed", "newly allowed"), ("denied", "newly denied")):
        rows = [r for r in report["changes"] if r["change"] == change]
        if not rows:
            continue
        lines.append(f"{title} ({len(rows)} source/destination groups):")
        for r in rows[:MAX_ROWS]:
            lines.append(f"  {r['src']} -> {r['dst']} {' '.join(r['ports'])} {_why(r)}")
        if len(rows) > MAX_ROWS:
            lines.append(f"  ... and {len(rows) - MAX_ROWS} more (see --json)")
    flows = report.get("observed_flows")
    if flows is not None:
        lines.append(
            f"observed flows: {flows['totals'].get('records', 0):,} records; "
            f"{len(flows['changes'])} observed edges change verdict"
        )
        for r in flows["changes"][:MAX_ROWS]:
            lines.append(
                f"  {r['src_workload']} -> {r['dst_workload']} {_port(r)}: "
                f"{r['old']} -> {r['new']} ({r['connections']:,} connections)"
            )
    return "\n".join(lines) + "\n"


def render_markdown(report: Mapping[str, Any]) -> str:
    """Markdown to paste into a pull request."""
    inp = report["inputs"]
    u = report["universe"]
    lines = [
        "## NetworkPolicy semantic diff",
        "",
        f"**{_verdict_line(report)}**",
        "",
        f"- old: `{'`, `'.join(inp['old'])}` ({inp['old_policies']} policies)",
        f"- new: `{'`, `'.join(inp['new'])}` ({inp['new_policies']} policies)",
        f"- inventory: `{'`, `'.join(inp['inventory'])}`",
        f"- universe: {_universe_line(u)}",
        f"- {u['definition']}",
        "",
    ]
    for change, title in (("allowed", "Newly allowed"), ("denied", "Newly denied")):
        rows = [r for r in report["changes"] if r["change"] == change]
        lines += _change_table(title, rows)
    flows = report.get("observed_flows")
    if flows is not None:
        lines += _flow_table(flows["changes"])
    return "\n".join(lines).rstrip() + "\n"


def _change_table(title: str, rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [f"### {title} ({len(rows)})", ""]
    if not rows:
        return [*lines, "None.", ""]
    lines += [
        "| source | destination | ports | side | before | after |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows[:MAX_ROWS]:
        before = ", ".join(r["old_rules"] or r["old_policies"]) or "open"
        after = ", ".join(r["new_rules"] or r["new_policies"]) or "open"
        lines.append(
            f"| {r['src']} | {r['dst']} | {', '.join(r['ports'])} | "
            f"{'+'.join(r['sides'])} | {before} | {after} |"
        )
    if len(rows) > MAX_ROWS:
        lines.append(f"\n... and {len(rows) - MAX_ROWS} more (see the JSON report)")
    return [*lines, ""]


def _flow_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = [f"### Observed flows that change verdict ({len(rows)} edges)", ""]
    if not rows:
        return [*lines, "None: every observed edge keeps its verdict.", ""]
    lines += [
        "| source | destination | port | old | new | connections |",
        "|---|---|---|---|---|---:|",
    ]
    for r in rows[:MAX_ROWS]:
        lines.append(
            f"| {r['src_workload']} | {r['dst_workload']} | {_port(r)} | {r['old']} | "
            f"{r['new']} | {r['connections']:,} |"
        )
    return [*lines, ""]


def _port(r: Mapping[str, Any]) -> str:
    return f"{r['port']}/{r['protocol']}" if r["port"] is not None else str(r["protocol"])
