"""The tighten report: ``TIGHTEN.md`` and its JSON twin, from one dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recommender.diff import group_changes
from recommender.model import NetworkPolicy
from recommender.tighten.core import TightenResult
from recommender.tighten.hits import HitTable
from recommender.tighten.text import (
    CHANGE_KINDS,
    NOTE_KINDS,
    change_dict,
    note_dict,
    peer_text,
    port_text,
)
from recommender.tighten.widen import Widening

#: Semantic-diff rows shown in Markdown (the JSON has them all).
MAX_DIFF_ROWS = 50


def build_report(
    result: TightenResult,
    inputs: Mapping[str, Any],
    warnings: list[str] | None = None,
    other_hits: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the report says, as plain JSON-ready data.

    ``other_hits``: hit rows of the policies of other kinds
    (:func:`recommender.tighten.cilium.cilium_hits_table`), after the v1 ones.
    """
    first, last = result.window
    opts = result.options
    return {
        "inputs": dict(inputs),
        "window": {"first_seen": first, "last_seen": last},
        "options": {
            "cidr_budget": opts.cidr_budget,
            "prune_dns": opts.prune_dns,
            "public_ingress_min_sources": opts.public_ingress_min_sources,
            "accept_widening": opts.accept_widening,
        },
        "totals": result.totals(),
        "changes": [change_dict(c) for c in result.changes],
        "kept": [note_dict(n) for n in result.notes],
        "widening": [_widening(w, opts.accept_widening) for w in result.widenings],
        "hits": [*hits_table(result.current, result.hits), *(other_hits or ())],
        "self_check": {
            "ok": result.check.ok,
            "allowed_kept": result.check.allowed_kept,
            "denied_kept": result.check.denied_kept,
            "widened": result.check.widened,
            "violations": list(result.check.violations),
        },
        "semantic_diff": _diff(result),
        "warnings": list(warnings or ()),
    }


def _widening(w: Widening, accepted: bool) -> dict[str, Any]:
    o = w.judged.observed
    return {
        "flow": {"src": o.src, "dst": o.dst, "port": o.port, "protocol": o.protocol},
        "side": w.direction,
        "namespace": w.namespace,
        "target": w.target,
        "rule": None
        if not w.possible
        else f"{w.direction} {peer_text(w.peer)} / {port_text(w.port)}",  # type: ignore[arg-type]
        "applied": accepted and w.possible,
        "problem": w.problem,
        "evidence": o.evidence(),
    }


def hits_table(policies: list[NetworkPolicy], hits: HitTable) -> list[dict[str, Any]]:
    """Per policy, per rule, per peer and per port: connections in the window."""
    out = []
    for p in policies:
        rules = []
        for direction in ("ingress", "egress"):
            if direction.capitalize() not in p.policy_types:
                continue
            for i, rule in enumerate((p.ingress if direction == "ingress" else p.egress) or ()):
                rid = f"{p.key}#{direction}[{i}]"
                rh = hits.rule(rid)
                rules.append(
                    {
                        "rule": rid,
                        "connections": rh.connections if rh else 0,
                        "first_seen": rh.first_seen if rh else None,
                        "last_seen": rh.last_seen if rh else None,
                        "peers": [
                            {"peer": peer_text(peer), "connections": _n(rh, "peers", k)}
                            for k, peer in enumerate(rule.peers or ())
                        ],
                        "ports": [
                            {"port": port_text(port), "connections": _n(rh, "ports", k)}
                            for k, port in enumerate(rule.ports or ())
                        ],
                    }
                )
        out.append({"policy": p.key, "connections": hits.policies.get(p.key, 0), "rules": rules})
    return out


def _n(rh: Any, attr: str, k: int) -> int:
    if rh is None:
        return 0
    hit = getattr(rh, attr).get(k)
    return int(hit.connections) if hit is not None else 0


def _diff(result: TightenResult) -> dict[str, Any] | None:
    if result.diff is None:
        return None
    d = result.diff
    return {
        "equivalent": d.equivalent,
        **d.counts(),
        "universe": d.universe.describe(),
        "changes": group_changes(d.changes),
    }


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def render_markdown(report: Mapping[str, Any]) -> str:
    """``TIGHTEN.md``: window, changes with evidence, kept items, widening, diff, hits."""
    w, t = report["window"], report["totals"]
    lines = [
        "# netpol tighten: proposed changes",
        "",
        f"- window: {w['first_seen'] or '?'} to {w['last_seen'] or '?'}",
        f"- evidence: {t['observations']} observations, {t['connections']} connections "
        f"(allowed by the current set: {t.get('allowed_connections', 0)}, denied: "
        f"{t.get('denied_connections', 0)}, unknown: {t.get('unknown_connections', 0)})",
        f"- options: {', '.join(f'{k}={v}' for k, v in report['options'].items())}",
        f"- self-check: {_check_line(report['self_check'])}",
        "",
        "Guarantees: the proposed set allows every observed flow the current set allows, and "
        "allows no flow the current set denies unless widening is accepted. Isolation "
        "(policyTypes) is never removed; DNS allowances are kept unless --prune-dns.",
        "",
    ]
    if report.get("warnings"):
        lines += ["## Warnings", "", *[f"- {x}" for x in report["warnings"]], ""]
    lines += _changes_md(report["changes"])
    lines += _kept_md(report["kept"])
    lines += _widening_md(report["widening"], report["options"]["accept_widening"])
    lines += _diff_md(report["semantic_diff"])
    lines += _hits_md(report["hits"])
    return "\n".join(lines).rstrip() + "\n"


def _check_line(c: Mapping[str, Any]) -> str:
    state = "ok" if c["ok"] else f"FAILED ({len(c['violations'])} violations)"
    return (
        f"{state}; observed cases allowed and still allowed: {c['allowed_kept']}, denied "
        f"and still denied: {c['denied_kept']}, newly allowed by accepted widening: "
        f"{c['widened']}"
    )


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _changes_md(changes: list[dict[str, Any]]) -> list[str]:
    out = [f"## Changes ({len(changes)})", ""]
    if not changes:
        return [*out, "- none: the current set is already as tight as the evidence allows", ""]
    out += ["| kind | rule | before | after | evidence |", "|---|---|---|---|---|"]
    out += [
        f"| {c['kind']} | `{c['rule'] or c['policy']}` | {_cell(c['before'])} | "
        f"{_cell(c['after'])} | {_cell(c['evidence'])} |"
        for c in changes
    ]
    used = sorted({c["kind"] for c in changes})
    return [*out, "", *[f"- `{k}`: {CHANGE_KINDS[k]}" for k in used], ""]


def _kept_md(notes: list[dict[str, Any]]) -> list[str]:
    out = [f"## Kept on purpose ({len(notes)})", ""]
    if not notes:
        return [*out, "- nothing", ""]
    out += [f"- `{n['kind']}` `{n['rule'] or n['policy']}`: {n['text']}" for n in notes]
    used = sorted({n["kind"] for n in notes})
    return [*out, "", *[f"- `{k}`: {NOTE_KINDS[k]}" for k in used], ""]


def _widening_md(items: list[dict[str, Any]], accepted: bool) -> list[str]:
    state = "applied" if accepted else "proposed only; pass --accept-widening to apply"
    out = [f"## Widening ({len(items)}, {state})", ""]
    if not items:
        return [*out, "- none: no observed legitimate flow is denied by the current set", ""]
    out += ["| flow | side | rule | evidence | applied |", "|---|---|---|---|---|"]
    for w in items:
        f, e = w["flow"], w["evidence"]
        ev = (
            f"{e['flowed']} flowed ({e['audit']} audit), {e['policy_denied']} policy-dropped, "
            f"{e['first_seen']} to {e['last_seen']}; {', '.join(e['refs'])}"
        )
        rule = w["rule"] or f"not possible: {w['problem']}"
        out.append(
            f"| {f['src']} -> {f['dst']} {f['protocol']}/{f['port']} | {w['side']} of "
            f"{w['target']} | {_cell(rule)} | {_cell(ev)} | "
            f"{'yes' if w['applied'] else 'no'} |"
        )
    return [*out, ""]


def _diff_md(diff: Mapping[str, Any] | None) -> list[str]:
    out = ["## Semantic diff (current -> proposed)", ""]
    if diff is None:
        return [*out, "- not computed", ""]
    verdict = "equivalent" if diff["equivalent"] else "not equivalent"
    out += [
        f"- {verdict}: {diff['newly_allowed']} reachabilities newly allowed, "
        f"{diff['newly_denied']} newly denied",
        f"- universe: {diff['universe']['definition']}",
        "- tighten probes no observed ports or addresses beyond these: the region probes "
        "already decide every numeric port and ipBlock exactly",
        "",
    ]
    rows = diff["changes"]
    if rows:
        out += [
            "| change | source | destination | ports | sides | policies before |",
            "|---|---|---|---|---|---|",
        ]
        out += [
            f"| {r['change']} | {r['src']} | {r['dst']} | {', '.join(r['ports'])} | "
            f"{', '.join(r['sides'])} | {', '.join(r['old_policies'])} |"
            for r in rows[:MAX_DIFF_ROWS]
        ]
        if len(rows) > MAX_DIFF_ROWS:
            out.append(f"\n({len(rows) - MAX_DIFF_ROWS} more rows in the JSON report)")
        out.append("")
    return out


def _hits_md(policies: list[dict[str, Any]]) -> list[str]:
    out = [
        "## Hits in the window (current set)",
        "",
        "| rule | connections | peers (connections) | ports (connections) |",
        "|---|---|---|---|",
    ]
    for p in policies:
        if not p["rules"]:
            out.append(f"| `{p['policy']}` (no rules) | {p['connections']} | | |")
        for r in p["rules"]:
            if "text" in r:  # another kind: the rule as written
                out.append(f"| `{r['rule']}` | {r['connections']} | `{_cell(r['text'])}` | |")
                continue
            peers = "; ".join(f"{x['peer']} ({x['connections']})" for x in r["peers"]) or "all"
            ports = ", ".join(f"{x['port']} ({x['connections']})" for x in r["ports"]) or "all"
            out.append(f"| `{r['rule']}` | {r['connections']} | {_cell(peers)} | {_cell(ports)} |")
    return [*out, ""]
