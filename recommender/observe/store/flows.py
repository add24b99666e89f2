"""Store observations as FlowRecord batches, for shadow mode with ``--store``.

Shadow judges flow records; the store keeps observations. Each observation
becomes synthetic records, one per CNI verdict class it holds (allowed,
audit, policy-denied, other denied, error, unknown), with ``conn_count`` the
connections of that class and ``raw_ref`` the first stored reference. So
per-line verdicts (``shadow --verdicts``) are per observation and verdict
class, not per input line, and the ``ref`` points at the first line seen.
The records carry no pod name or IP for pods (the store keeps identities:
namespace, stable labels and the readable workload), so shadow resolves pod
ends by their labels, as Cilium enforces policy on its identity labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from recommender.model import FLOW_COLUMNS
from recommender.observe.engines.base import FlowTable, IngestStats
from recommender.observe.store.read import When, read_store_observations, read_store_stats

SOURCE_FORMAT = "netpol_store"

#: (verdict, is_policy_drop, drop_reason, counts key or a callable of the verdict map)
_CLASSES: tuple[tuple[str, bool, str | None], ...] = (
    ("allowed", False, None),
    ("audit", False, None),
    ("denied", True, "POLICY_DENIED"),
    ("denied", False, None),
    ("error", False, None),
    ("unknown", False, None),
)

_KINDS = {
    k.lower(): k
    for k in (
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "ReplicationController",
    )
}


def _class_count(verdicts: dict[str, int], verdict: str, policy_drop: bool) -> int:
    if verdict != "denied":
        return int(verdicts.get(verdict, 0))
    policy = int(verdicts.get("policy_denied", 0))
    return policy if policy_drop else int(verdicts.get("denied", 0)) - policy


def split_workload(workload: Any) -> tuple[str | None, str | None, str | None]:
    """``deployment/web`` -> (Deployment, web, None); ``pod/x`` -> (None, None, x).

    >>> split_workload("statefulset/db"), split_workload("pod/debug"), split_workload("world")
    (('StatefulSet', 'db', None), (None, None, 'debug'), (None, None, None))
    """
    if not isinstance(workload, str) or "/" not in workload:
        return None, None, None
    kind, _, name = workload.partition("/")
    if kind == "pod" and name != "?":
        return None, None, name
    if kind in _KINDS:
        return _KINDS[kind], name, None
    return None, None, None


def _ip_version(src_ip: Any, dst_ip: Any) -> float:
    for ip in (src_ip, dst_ip):
        if isinstance(ip, str) and ip:
            return 6.0 if ":" in ip else 4.0
    return np.nan


def _records(obs: dict[str, Any]) -> Iterator[dict[str, Any]]:
    ends: dict[str, Any] = {}
    for side in ("src", "dst"):
        kind, name, pod = (
            split_workload(obs[f"{side}_workload"])
            if obs[f"{side}_kind"] == "pod"
            else (None, None, None)
        )
        ends |= {f"{side}_workload_kind": kind, f"{side}_workload_name": name, f"{side}_pod": pod}
    refs = list(obs["refs"])
    base = {
        "time_start": obs["first_seen"],
        "time_end": obs["last_seen"],
        "source_format": SOURCE_FORMAT,
        "observer": None,
        "reporter": "unknown",
        **{
            f"{s}_{f}": obs[f"{s}_{f}"]
            for s in ("src", "dst")
            for f in ("kind", "cluster", "namespace", "labels", "ip")
        },
        **ends,
        "src_service_account": None,
        "dst_service_account": None,
        "src_port": np.nan,
        "dst_port": np.nan if pd.isna(obs["port"]) else float(obs["port"]),
        "protocol": obs["protocol"],
        "icmp_type": np.nan,
        "ip_version": _ip_version(obs["src_ip"], obs["dst_ip"]),
        "dst_service_namespace": None,
        "dst_service_name": None,
        "dst_names": list(obs["dst_names"]),
        "policies": [],
        "is_reply": False,
        "observation_point": None,
        "event_type": np.nan,
        "raw_ref": refs[0] if refs else None,
    }
    for verdict, policy_drop, reason in _CLASSES:
        n = _class_count(obs["verdicts"], verdict, policy_drop)
        if n > 0:
            yield {
                **base,
                "verdict": verdict,
                "drop_reason": reason,
                "is_policy_drop": policy_drop,
                "conn_count": n,
            }


def observation_flow_batches(
    observations: pd.DataFrame, batch_size: int = 65536
) -> Iterator[pd.DataFrame]:
    """Synthetic FlowRecord batches (exactly ``FLOW_COLUMNS``) for an observation table."""
    batch: list[dict[str, Any]] = []
    for obs in observations.to_dict("records"):
        batch.extend(_records(obs))
        if len(batch) >= batch_size:
            yield _frame(batch)
            batch = []
    if batch:
        yield _frame(batch)


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
    frame["conn_count"] = frame["conn_count"].astype("int64")
    frame["is_policy_drop"] = frame["is_policy_drop"].astype(bool)
    return frame


def store_flow_table(
    path: str, since: When = None, until: When = None, batch_size: int = 65536
) -> FlowTable:
    """The store's observations over a window as a :class:`FlowTable` (batches + stats).

    ``stats`` are the ingest statistics of the appends overlapping the window
    (:func:`recommender.observe.store.read.read_store_stats`).
    """
    observations = read_store_observations(path, since, until)
    stats = read_store_stats(path, since, until)
    box: list[IngestStats] = []

    def batches() -> Iterator[pd.DataFrame]:
        yield from observation_flow_batches(observations, batch_size)
        box.append(stats)

    return FlowTable(batches(), box)
