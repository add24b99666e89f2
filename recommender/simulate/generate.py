"""Generate the flow files of one simulation, window by window, in time order.

Connections are drawn per 10-minute chunk: Poisson counts per edge (numpy,
vectorised), CronJob runs at their schedule, attacks in their burst. Each
chunk's lines are sorted by time and streamed to gzip, with non-flow and
damaged lines inserted at seeded positions; every position is recorded.
"""

from __future__ import annotations

import gzip
import random
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from recommender.progress import Progress
from recommender.simulate.attacks import PlannedAttack, plan_attacks
from recommender.simulate.cluster import NS_PER_S, ClusterState, PodState
from recommender.simulate.connections import Conn, emit_connection
from recommender.simulate.edges import EPHEMERAL_PORTS, LegitEdge, PeerPicker
from recommender.simulate.hubble_writer import (
    REPLY_ABSENT,
    REPLY_TRUE,
    LineWriter,
    lost_events_line,
    node_status_line,
)
from recommender.simulate.topology import Topology

CHUNK_NS = 600 * NS_PER_S
#: Rough lines per connection, used to turn ``--flows N`` into a rate scale.
LINES_PER_CONNECTION = 5.2
GARBAGE = (
    "\x00\x00\x00\x00\x00\x00\x00\x00",
    "rpc error: code = Unavailable desc = error reading from server: EOF",
    '}}],"node_name":',
    "<html><body>502 Bad Gateway</body></html>",
)


@dataclass(frozen=True)
class SimOptions:
    """Switches and knobs of a simulation (everything seeded)."""

    seed: int = 1
    window_s: int = 24 * 3600
    fresh_window_s: int | None = None
    start_s: int = 1793577600  # 2026-11-02T00:00:00Z
    replies: bool = True
    illegitimate: bool = True
    damage: bool = True
    non_flow: bool = True
    rate_scale: float = 1.0
    flows: int | None = None
    reply_share: float = 0.6
    unknown_reply_share: float = 0.15
    established_share: float = 0.2
    damage_rate: float = 1 / 5000
    non_flow_rate: float = 1 / 5000
    compresslevel: int = 6

    @property
    def fresh_s(self) -> int:
        return self.fresh_window_s or self.window_s


@dataclass
class FileStats:
    """What one flow file holds, by 1-based line number."""

    lines: int = 0
    illegitimate: list[int] = field(default_factory=list)
    illegitimate_by_kind: Counter[str] = field(default_factory=Counter)
    damaged: list[int] = field(default_factory=list)
    non_flow: list[int] = field(default_factory=list)
    replies: Counter[str] = field(default_factory=Counter)
    connections: Counter[str] = field(default_factory=Counter)  # edge id -> connections
    attack_edges: Counter[str] = field(default_factory=Counter)  # truth edge JSON -> conns


class FlowSink:
    """Streams sorted lines to a deterministic gzip file and keeps :class:`FileStats`."""

    def __init__(
        self,
        fh: IO[bytes],
        writer: LineWriter,
        rng: random.Random,
        cluster: ClusterState,
        options: SimOptions,
    ) -> None:
        self.gz = gzip.GzipFile(
            filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=options.compresslevel
        )
        self.writer, self.rng, self.cluster, self.options = writer, rng, cluster, options
        self.stats = FileStats()
        # zlib releases the GIL: compress the previous chunk while the next is generated.
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: deque[Future[int]] = deque()

    def write_chunk(self, events: list[tuple[int, int, str, int, str]]) -> None:
        """Write ``(time, seq, line, reply_state, tag)`` events (sorted here)."""
        events.sort(key=lambda e: (e[0], e[1]))
        extras = self._extras(len(events))
        out: list[str] = []
        stats = self.stats
        for i, (t, _, line, reply, tag) in enumerate(events):
            stats.lines += 1
            out.append(line)
            stats.replies[_REPLY_NAMES[reply]] += 1
            if tag:
                stats.illegitimate.append(stats.lines)
                stats.illegitimate_by_kind[tag] += 1
            for kind in extras.get(i, ()):
                stats.lines += 1
                out.append(self._extra_line(kind, t, line))
                (stats.damaged if kind == "damaged" else stats.non_flow).append(stats.lines)
        if out:
            while len(self._pending) >= 2:
                self._pending.popleft().result()
            data = ("\n".join(out) + "\n").encode("utf-8")
            self._pending.append(self._pool.submit(self.gz.write, data))

    def _extras(self, n: int) -> dict[int, list[str]]:
        """Positions (after event i) of non-flow and damaged lines for this chunk."""
        extras: dict[int, list[str]] = {}
        if n == 0:
            return extras
        plan = []
        if self.options.non_flow:
            k = int(
                np.random.default_rng(self.rng.getrandbits(32)).poisson(
                    n * self.options.non_flow_rate
                )
            )
            plan += ["non_flow"] * (k + (0 if self.stats.non_flow else 2))
        if self.options.damage:
            k = int(
                np.random.default_rng(self.rng.getrandbits(32)).poisson(
                    n * self.options.damage_rate
                )
            )
            plan += ["damaged"] * (k + (0 if self.stats.damaged else 2))
        for kind in plan:
            extras.setdefault(self.rng.randrange(n), []).append(kind)
        return extras

    def _extra_line(self, kind: str, t: int, neighbour: str) -> str:
        rng = self.rng
        if kind == "damaged":
            if rng.random() < 0.7:
                return neighbour[: rng.randint(10, len(neighbour) - 10)]
            return rng.choice(GARBAGE)
        node = rng.choice(self.cluster.nodes)
        if rng.random() < 0.7:
            return lost_events_line(t, self.writer, node, rng.randint(1, 400), rng.randint(0, 3))
        state = rng.choice(("NODE_UNAVAILABLE", "NODE_CONNECTED"))
        return node_status_line(t, self.writer, node, state)

    def close(self) -> None:
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()
        self.gz.close()


_REPLY_NAMES = {REPLY_TRUE: "is_reply_true", 0: "is_reply_false", REPLY_ABSENT: "is_reply_absent"}


@dataclass
class Context:
    topology: Topology
    cluster: ClusterState
    edges: list[LegitEdge]
    options: SimOptions
    rate_scale: float


def effective_rate_scale(edges: list[LegitEdge], options: SimOptions) -> float:
    """``--rate-scale``, or the scale that makes ``--flows N`` lines in the train window."""
    if options.flows is None:
        return options.rate_scale
    per_hour = sum(e.rate for e in edges if not e.spec.fresh_only and not e.spec.per_run)
    expected = per_hour * options.window_s / 3600 * LINES_PER_CONNECTION
    return options.flows / expected if expected > 0 else 1.0


def generate_window(
    ctx: Context, window: str, t0: int, t1: int, fh: IO[bytes], progress: Progress | None = None
) -> FileStats:
    """Write the flows of one window to ``fh``; return what was written where."""
    seed = ctx.options.seed
    rng = random.Random(f"{seed}:{window}:flows")
    writer = LineWriter(ctx.topology.cluster.name, random.Random(f"{seed}:{window}:lines"))
    sink = FlowSink(fh, writer, random.Random(f"{seed}:{window}:extras"), ctx.cluster, ctx.options)
    np_rng = np.random.default_rng(abs(hash_seed(seed, window)))
    picker = PeerPicker(ctx.cluster, window, rng)
    attacks = _attacks(ctx, window, t0, t1)
    lam = np.array(
        [
            0.0
            if (e.spec.per_run or (e.spec.fresh_only and window == "train"))
            else e.rate * ctx.rate_scale
            for e in ctx.edges
        ]
    )
    runs = _runs_by_chunk(ctx, window, t0, t1)
    seq = 0
    for c0 in range(t0, t1, CHUNK_NS):
        c1 = min(c0 + CHUNK_NS, t1)
        events: list[tuple[int, int, str, int, str]] = []
        counts = np_rng.poisson(lam * ((c1 - c0) / (3600 * NS_PER_S)))
        for idx in np.flatnonzero(counts).tolist():
            edge = ctx.edges[idx]
            for _ in range(int(counts[idx])):
                seq = _add(
                    ctx,
                    sink,
                    picker,
                    rng,
                    writer,
                    events,
                    edge,
                    c0 + rng.randrange(c1 - c0),
                    None,
                    seq,
                )
        for pod, group in runs.get(c0, ()):
            for _ in range(group[0].spec.per_run):
                t = min(pod.created_ns + rng.randrange(int(pod.spec.run_minutes * 60e9)), t1 - 1)
                edge = group[0] if len(group) == 1 else rng.choice(group)
                seq = _add(ctx, sink, picker, rng, writer, events, edge, t, pod, seq)
        for planned in attacks.get(c0, ()):
            for t, line, reply in emit_connection(writer, planned.conn):
                events.append((t, seq, line, reply, planned.kind))
                seq += 1
            sink.stats.attack_edges[planned.edge] += 1
        sink.write_chunk(events)
        if progress is not None:
            progress.update(len(events))
    sink.close()
    return sink.stats


def hash_seed(seed: int, window: str) -> int:
    """A stable integer from seed and window (``hash()`` of str is salted per process)."""
    return random.Random(f"{seed}:{window}:numpy").getrandbits(63)


def _add(
    ctx: Context,
    sink: FlowSink,
    picker: PeerPicker,
    rng: random.Random,
    writer: LineWriter,
    events: list[tuple[int, int, str, int, str]],
    edge: LegitEdge,
    t: int,
    run_pod: PodState | None,
    seq: int,
) -> int:
    server = picker.server(edge)
    if server is None:
        return seq
    client = picker.client(edge, server, run_pod)
    if client is None:
        return seq
    o = ctx.options
    conn = Conn(
        t,
        client,
        server,
        rng.randint(*EPHEMERAL_PORTS),
        edge.spec.port,
        edge.spec.protocol,
        names=edge.names_json,
        reply=o.replies and rng.random() < o.reply_share,
        established=rng.random() < o.established_share,
        unknown_reply=rng.random() < o.unknown_reply_share,
    )
    for t_line, line, reply in emit_connection(writer, conn):
        events.append((t_line, seq, line, reply, ""))
        seq += 1
    sink.stats.connections[edge.id] += 1
    return seq


def _chunk_of(t: int, t0: int) -> int:
    return t0 + (t - t0) // CHUNK_NS * CHUNK_NS


def _runs_by_chunk(
    ctx: Context, window: str, t0: int, t1: int
) -> dict[int, list[tuple[PodState, list[LegitEdge]]]]:
    """CronJob/Job runs starting in this window, with the edges each run makes.

    Edges split per external IP come as one group: a run makes ``per_run``
    connections to the external, each to one of its IPs.
    """
    out: dict[int, list[tuple[PodState, list[LegitEdge]]]] = {}
    for key, pods in sorted(ctx.cluster.runs.items()):
        groups: dict[int, list[LegitEdge]] = {}
        for e in ctx.edges:
            if e.spec.src == key and e.spec.per_run:
                groups.setdefault(id(e.spec), []).append(e)
        for pod in pods:
            if t0 <= pod.created_ns < t1:
                out.setdefault(_chunk_of(pod.created_ns, t0), []).extend(
                    (pod, group) for group in groups.values()
                )
    return out


def _attacks(ctx: Context, window: str, t0: int, t1: int) -> dict[int, list[PlannedAttack]]:
    if not ctx.options.illegitimate:
        return {}
    legit = {(e.spec.src, e.spec.dst, e.spec.port, e.spec.protocol) for e in ctx.edges}
    rng = random.Random(f"{ctx.options.seed}:{window}:attacks")
    out: dict[int, list[PlannedAttack]] = {}
    for planned in plan_attacks(
        ctx.topology, ctx.cluster, window, t0, t1, legit, rng, ctx.options.replies
    ):
        out.setdefault(_chunk_of(planned.conn.t, t0), []).append(planned)
    return out


def write_window(
    ctx: Context, window: str, t0: int, t1: int, path: Path, show_progress: bool = True
) -> FileStats:
    """Generate one window into ``path`` (a temp path inside the atomic output dir)."""
    expected = None
    progress = Progress(f"simulate {window}", total=expected) if show_progress else None
    with open(path, "wb") as fh:
        stats = generate_window(ctx, window, t0, t1, fh, progress)
    if progress is not None:
        progress.done()
    return stats
