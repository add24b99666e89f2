"""The aggregation engine interface: flows in, FlowRecords or observations out.

One small interface so a distributed engine (Spark) can be added without
touching the rest. Every engine runs the same normalization SQL
(:mod:`recommender.flows.hubble_sql`, :mod:`recommender.semantics.resolve`,
:mod:`recommender.observe.engines.aggregate`).

Pick one with :func:`recommender.observe.factory.get_engine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from recommender.errors import InputError
from recommender.model import Inventory

if TYPE_CHECKING:  # pandas is imported where frames are built, to keep start-up fast
    import pandas as pd

#: How many ``path:line: reason`` reject samples are kept.
MAX_REJECT_SAMPLES = 5


@dataclass(frozen=True)
class IngestStats:
    """What a run read, skipped and rejected. Nothing is dropped silently.

    ``connections`` counts de-duplicated connections (not lines); ``replies``
    counts reply-packet records (they never yield a port); ``reply_only``
    counts connections seen only through replies (no observation row).
    """

    lines: int = 0
    flow_records: int = 0
    connections: int = 0
    replies: int = 0
    reply_only: int = 0
    non_flow: Mapping[str, int] = field(default_factory=dict)
    lost_events: int = 0
    rejects: Mapping[str, int] = field(default_factory=dict)
    reject_samples: tuple[str, ...] = ()
    unknown_peers: int = 0
    unknown_reasons: Mapping[str, int] = field(default_factory=dict)
    policy_drops: int = 0
    inferred_orientation: int = 0
    unknown_orientation: int = 0
    #: Connections per observer node (Hubble ``node_name``); None when not known (a store).
    observers: Mapping[str, int] | None = None

    @property
    def rejected(self) -> int:
        """Total rejected lines."""
        return sum(self.rejects.values())

    def warnings(self) -> list[str]:
        """Data-completeness and quality warnings for the user."""
        out = []
        if self.lost_events:
            out.append(
                f"Hubble reported {self.lost_events:,} lost events: the capture is "
                "incomplete, so some connections may be missing"
            )
        if self.rejected:
            out.append(f"{self.rejected:,} input lines rejected ({_fmt(self.rejects)})")
        if self.unknown_peers:
            out.append(
                f"{self.unknown_peers:,} connections have a peer of unknown kind "
                f"(reasons by peer end: {_fmt(self.unknown_reasons)}); they never widen a rule"
            )
        if self.unknown_orientation:
            out.append(
                f"{self.unknown_orientation:,} records have no reply flag and no "
                "port/TCP-flag evidence; kept as observed (client = IP source)"
            )
        return out

    def format(self) -> str:
        """A short multi-line summary."""
        lines = [
            f"lines read: {self.lines:,}; flow records: {self.flow_records:,}; "
            f"connections: {self.connections:,}",
            f"reply packets: {self.replies:,} (connections seen only as replies: "
            f"{self.reply_only:,}); policy drops: {self.policy_drops:,}",
            f"non-flow lines: {sum(self.non_flow.values()):,}"
            + (f" ({_fmt(self.non_flow)})" if self.non_flow else ""),
            f"rejected lines: {self.rejected:,}"
            + (f" ({_fmt(self.rejects)})" if self.rejects else ""),
            f"unknown peers: {self.unknown_peers:,}; direction inferred: "
            f"{self.inferred_orientation:,}, unknown: {self.unknown_orientation:,}",
        ]
        lines += [f"  {s}" for s in self.reject_samples]
        lines += [f"warning: {w}" for w in self.warnings()]
        return "\n".join(lines)


def _fmt(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {counts[k]:,}" for k in sorted(counts))


@dataclass(frozen=True)
class IngestResult:
    """Observations (``OBSERVATION_COLUMNS``, plus ``bucket`` when asked) and stats."""

    observations: pd.DataFrame
    stats: IngestStats


class FlowTable:
    """FlowRecords in input order, as pandas batches; ``stats`` is final after iteration.

    Iterate once (the input may be stdin). ``to_pandas()`` reads everything.
    """

    def __init__(self, batches: Iterator[pd.DataFrame], stats_box: list[IngestStats]) -> None:
        self._batches = batches
        self._stats_box = stats_box
        self._used = False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._used:
            raise RuntimeError("a FlowTable can be iterated only once")
        self._used = True
        return self._batches

    def batches(self) -> Iterator[pd.DataFrame]:
        """The batches, each a DataFrame with exactly ``FLOW_COLUMNS``."""
        return iter(self)

    def to_pandas(self) -> pd.DataFrame:
        """All records in one DataFrame."""
        import pandas as pd

        frames = list(self)
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    @property
    def stats(self) -> IngestStats:
        """Final statistics; available once the batches were consumed."""
        if not self._stats_box:
            raise RuntimeError("FlowTable.stats is known only after reading every batch")
        return self._stats_box[0]


class AggregationEngine(ABC):
    """Read flow files (``-`` = stdin, globs, ``.gz``) and normalize or aggregate them."""

    name: str = ""
    #: ``--format``: the format of every flow file; None = sniff each file.
    flow_format: str | None = None

    @abstractmethod
    def read_flows(
        self, paths: Sequence[str], inventory: Inventory | None = None, *, strict: bool = False
    ) -> FlowTable:
        """FlowRecords in input order, each with ``raw_ref`` ``path:line``.

        Raises
        ------
        InputError
            Missing/unreadable file; with ``strict``, the first rejected line.
        """

    @abstractmethod
    def aggregate(
        self,
        paths: Sequence[str],
        inventory: Inventory | None = None,
        *,
        strict: bool = False,
        bucket: str | None = None,
    ) -> IngestResult:
        """Observations: one row per (source identity, destination identity, port, protocol).

        ``bucket`` (for example ``"1h"``) adds a ``bucket`` column (bucket start, UTC)
        and counts connections per bucket.
        """

    def convert(self, paths: Sequence[str], out: str, *, force: bool = False) -> dict[str, int]:
        """Write ``paths`` (Hubble JSON) as Parquet at ``out`` (see
        :mod:`recommender.flows.parquet`); the lines written by kind."""
        raise InputError(None, f"the {self.name} engine cannot convert flow logs")


def strict_error(path: str, line: int | None, reason: str) -> InputError:
    """The ``--strict`` error for the first rejected line."""
    return InputError(path, reason, line=line, hint="--strict stops at the first rejected line")
