"""Renderings of observations: JSON-ready rows, the JSON document, CSV, a fixed-width table.

Used by ``netpol observations`` (which only wires arguments to these) and by
anyone who wants the rows of an :class:`~recommender.observe.engines.base.IngestResult`.
"""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from recommender.labels import decode_labels, format_labels
from recommender.observe.engines.base import IngestResult, IngestStats
from recommender.policy_io.atomic import dumps_json

if TYPE_CHECKING:  # pandas loads only when a command runs (start-up time)
    import pandas as pd


def _time(value: Any) -> str | None:
    import pandas as pd

    if value is None or pd.isna(value):
        return None
    return str(pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def _plain(value: Any) -> Any:
    import pandas as pd

    if value is None or (not isinstance(value, (list, dict)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def observation_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Observation rows as plain JSON-ready dicts (labels decoded, times ISO-8601 UTC)."""
    rows = []
    for rec in frame.to_dict("records"):
        row = {k: _plain(v) for k, v in rec.items()}
        for key in ("src_labels", "dst_labels"):
            row[key] = decode_labels(row[key]) if row[key] is not None else None
        for key in ("first_seen", "last_seen", "bucket"):
            if key in rec:
                row[key] = _time(rec[key])
        rows.append(row)
    return rows


def stats_record(stats: IngestStats) -> dict[str, Any]:
    """Statistics as a JSON-ready dict."""
    return {
        "lines": stats.lines,
        "flow_records": stats.flow_records,
        "connections": stats.connections,
        "replies": stats.replies,
        "reply_only_connections": stats.reply_only,
        "non_flow": dict(sorted(stats.non_flow.items())),
        "lost_events": stats.lost_events,
        "rejects": dict(sorted(stats.rejects.items())),
        "reject_samples": list(stats.reject_samples),
        "unknown_peers": stats.unknown_peers,
        "unknown_reasons": dict(sorted(stats.unknown_reasons.items())),
        "policy_drops": stats.policy_drops,
        "observers": dict(stats.observers) if stats.observers is not None else None,
        "warnings": stats.warnings(),
    }


def render_json(rows: list[dict[str, Any]], stats: IngestStats) -> str:
    """``{"observations": [...], "stats": {...}}``, keys sorted, one document."""
    return dumps_json({"observations": rows, "stats": stats_record(stats)})


def render_csv(rows: list[dict[str, Any]]) -> str:
    """One CSV row per observation; lists and maps as compact JSON cells."""
    buf = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()
                if isinstance(v, (list, dict))
                else v
                for k, v in row.items()
            }
        )
    return buf.getvalue()


def _peer(row: dict[str, Any], side: str) -> str:
    kind = row[f"{side}_kind"]
    if kind == "pod":
        ns = row[f"{side}_namespace"] or "?"
        labels = format_labels(row[f"{side}_labels"] or {})
        return f"{ns}/{row[f'{side}_workload']} {{{labels}}}"
    ip = row[f"{side}_ip"] or "?"
    names = ",".join(row.get("dst_names") or []) if side == "dst" else ""
    return f"{row[f'{side}_workload']} {ip}" + (f" ({names})" if names else "")


def render_table(rows: list[dict[str, Any]], out: TextIO | None = None) -> str:
    """A fixed-width table: source, destination, port/protocol, connections, verdicts."""
    header = ("SOURCE", "DESTINATION", "PORT", "CONNS", "VERDICTS")
    body = []
    for row in rows:
        port = (
            f"{row['port']}/{row['protocol']}" if row["port"] is not None else str(row["protocol"])
        )
        verdicts = ",".join(f"{k}={v}" for k, v in row["verdicts"].items() if v)
        body.append((_peer(row, "src"), _peer(row, "dst"), port, str(row["connections"]), verdicts))
    widths = [min(max([len(header[i])] + [len(r[i]) for r in body]), 70) for i in range(5)]
    lines = [
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in (header, *body)
    ]
    return "\n".join(lines) + "\n" + f"({len(rows)} observations)\n"


def result_rows(result: IngestResult) -> list[dict[str, Any]]:
    """Convenience for callers: observation rows of a result."""
    return observation_records(result.observations)
