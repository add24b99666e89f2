"""What both engines share around the SQL: the FlowRecord query of ``read_flows``,
statistics over its batches, ``--strict`` errors, and the level-2 table to pandas."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from recommender.errors import InputError
from recommender.flows.hubble_sql import reject_class_sql
from recommender.flows.sources import FlowSource
from recommender.model import FLOW_COLUMNS
from recommender.observe.engines.base import MAX_REJECT_SAMPLES, IngestStats, strict_error
from recommender.semantics.policy_fields import printable


def arrow_to_pandas(table: pa.Table) -> pd.DataFrame:
    """The level-2 table as pandas; an all-NULL text column holds ``None`` (object),
    as DuckDB's own ``df()`` gives it, so the observation table is unchanged."""
    empty = [
        name
        for name, column in zip(table.column_names, table.columns, strict=True)
        if (pa.types.is_string(column.type) or pa.types.is_large_string(column.type))
        and column.null_count == len(column)
    ]
    # Arrow buffers are released column by column while pandas is built (lower peak);
    # the caller must not use ``table`` afterwards.
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    pa.default_memory_pool().release_unused()  # the freed Arrow buffers, back to the OS
    for name in empty:
        frame[name] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    return frame


def flow_table_sql(records: str) -> str:
    """FLOW_COLUMNS in input order, ``conn_count`` 1 on each connection's first request record."""
    key = (
        "line_kind, coalesce(is_reply, false), src_ip, src_port, dst_ip, server_port, protocol, "
        "CASE WHEN src_ip IS NULL OR dst_ip IS NULL THEN line_no END, "
        "CASE WHEN src_ip IS NULL OR dst_ip IS NULL THEN file_id END"
    )
    first = f"row_number() OVER (PARTITION BY {key} ORDER BY file_id, line_no) = 1"
    cols = []
    for c in FLOW_COLUMNS:
        if c == "dst_port":
            cols.append(
                "CASE WHEN coalesce(is_reply, false) THEN NULL ELSE dst_port END AS dst_port"
            )
        elif c == "conn_count":
            cols.append(
                f"CASE WHEN line_kind = 'flow' AND NOT coalesce(is_reply, false) AND {first}"
                " THEN 1 ELSE 0 END AS conn_count"
            )
        else:
            cols.append(c)
    extra = (
        f"line_kind, reject_detail, {reject_class_sql('reject_detail')} AS reject_class, lost, "
        "orientation, src_detail, dst_detail, file_id, line_no"
    )
    return f"SELECT {', '.join(cols)}, {extra} FROM ({records}) ORDER BY file_id, line_no"


def raise_first_reject(frame: pd.DataFrame, sources: list[FlowSource]) -> None:
    rejects = frame[frame["line_kind"] == "reject"]
    if len(rejects):
        row = rejects.iloc[0]
        raise strict_error(
            sources[int(row["file_id"])].path, int(row["line_no"]), str(row["reject_detail"])
        )


def strict_from_sample(sample: str, sources: list[FlowSource]) -> InputError:
    """Split ``path:line: reason`` using the known paths (a path may contain ':')."""
    for source in sorted(sources, key=lambda s: -len(s.path)):
        if sample.startswith(source.path + ":"):
            line, _, reason = sample[len(source.path) + 1 :].partition(": ")
            return strict_error(source.path, int(line), reason)
    return strict_error(sample, None, "rejected line")


class StatsAccumulator:
    """IngestStats from FlowRecord batches (``read_flows``); reply_only is not computed."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "lines",
                "flow_records",
                "connections",
                "replies",
                "lost_events",
                "unknown_peers",
                "policy_drops",
                "inferred_orientation",
                "unknown_orientation",
            ),
            0,
        )
        self.non_flow: dict[str, int] = {}
        self.rejects: dict[str, int] = {}
        self.unknown_reasons: dict[str, int] = {}
        self.samples: list[str] = []
        self.observers: dict[str, int] = {}

    def add(self, frame: pd.DataFrame) -> None:
        flows = frame[frame["line_kind"] == "flow"]
        firsts = flows[flows["conn_count"] == 1]
        c = self.counts
        c["lines"] += len(frame)
        c["flow_records"] += len(flows)
        c["connections"] += int(flows["conn_count"].sum())
        c["replies"] += int(flows["is_reply"].fillna(False).astype(bool).sum())
        c["lost_events"] += int(frame["lost"].sum())
        c["policy_drops"] += int((firsts["is_policy_drop"].fillna(False).astype(bool)).sum())
        c["inferred_orientation"] += int((flows["orientation"] == "inferred").sum())
        c["unknown_orientation"] += int((flows["orientation"] == "unknown").sum())
        for side in ("src", "dst"):
            unknown = firsts[firsts[f"{side}_kind"] == "unknown"]
            for reason, n in unknown[f"{side}_detail"].fillna("?").value_counts().items():
                self.unknown_reasons[str(reason)] = self.unknown_reasons.get(str(reason), 0) + int(
                    n
                )
        c["unknown_peers"] += int(
            ((firsts["src_kind"] == "unknown") | (firsts["dst_kind"] == "unknown")).sum()
        )
        _merge(self.observers, firsts["observer"].dropna().value_counts())
        others = frame[~frame["line_kind"].isin(["flow", "reject"])]
        _merge(self.non_flow, others["line_kind"].value_counts())
        rejects = frame[frame["line_kind"] == "reject"]
        _merge(
            self.rejects,
            rejects["reject_class"].dropna().map(lambda k: printable(str(k))).value_counts(),
        )
        room = MAX_REJECT_SAMPLES - len(self.samples)
        for _, row in rejects.head(max(room, 0)).iterrows():
            self.samples.append(f"{row['raw_ref']}: {printable(str(row['reject_detail']))}")

    def result(self) -> IngestStats:
        return IngestStats(
            **self.counts,
            non_flow=self.non_flow,
            rejects=self.rejects,
            reject_samples=tuple(self.samples),
            unknown_reasons=self.unknown_reasons,
            observers=dict(sorted(self.observers.items())),
        )


def _merge(into: dict[str, int], counts: pd.Series) -> None:
    for key, n in counts.items():
        into[str(key)] = into.get(str(key), 0) + int(n)
