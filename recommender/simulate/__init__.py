"""Traffic simulator with ground truth.

A declarative topology (:mod:`recommender.simulate.topology`) becomes a cluster
inventory (``kubectl get ... -o json``), Hubble jsonpb flow logs for a training
window and for a fresh window after a rollout, and ``truth.json`` saying which
edges are legitimate, which lines are illegitimate, damaged or not flows.

>>> from recommender.simulate import load_topology
>>> load_topology("webshop").name
'webshop'
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from recommender.policy_io.atomic import atomic_directory
from recommender.simulate.cluster import NS_PER_S, ClusterState, Windows, build_cluster
from recommender.simulate.edges import resolve_edges
from recommender.simulate.generate import Context, SimOptions, effective_rate_scale, write_window
from recommender.simulate.inventory_writer import build_inventory, render_inventory
from recommender.simulate.topology import Topology, available_topologies, load_topology
from recommender.simulate.truth import FRESH_FILE, TRAIN_FILE, build_truth

__all__ = [
    "SimOptions",
    "SimulationSummary",
    "Topology",
    "available_topologies",
    "build_inventory",
    "load_topology",
    "run_simulation",
    "simulation_windows",
    "build_cluster",
]

OUTPUT_FILES = ("inventory.json", "inventory-fresh.json", TRAIN_FILE, FRESH_FILE, "truth.json")


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote and how fast."""

    out_dir: Path
    lines: dict[str, int]
    seconds: float

    @property
    def lines_per_second(self) -> float:
        return sum(self.lines.values()) / max(self.seconds, 1e-9)


def simulation_windows(options: SimOptions) -> Windows:
    """Train window from ``start_s``; the rollout at its end; then the fresh window."""
    start = options.start_s * NS_PER_S
    rollout = start + options.window_s * NS_PER_S
    return Windows(start, rollout, rollout + options.fresh_s * NS_PER_S)


def write_inventories(
    topology: Topology, cluster: ClusterState, windows: Windows, out: Path
) -> None:
    """``inventory.json`` at the end of training, ``inventory-fresh.json`` at the end."""
    train = build_inventory(topology, cluster, "train", windows.rollout - 1)
    fresh = build_inventory(topology, cluster, "fresh", windows.fresh_end - 1)
    (out / "inventory.json").write_bytes(render_inventory(train))
    (out / "inventory-fresh.json").write_bytes(render_inventory(fresh))


def run_simulation(
    topology: Topology,
    out_dir: str | os.PathLike[str],
    options: SimOptions,
    force: bool = False,
    show_progress: bool = True,
) -> SimulationSummary:
    """Simulate ``topology`` and write every output file into ``out_dir`` atomically.

    Raises
    ------
    OutputExistsError
        ``out_dir`` exists and ``force`` is false.
    """
    began = time.monotonic()
    windows = simulation_windows(options)
    cluster = build_cluster(topology, options.seed, windows)
    edges = resolve_edges(topology)
    scale = effective_rate_scale(edges, options)
    ctx = Context(topology, cluster, edges, options, scale)
    with atomic_directory(out_dir, force) as tmp:
        write_inventories(topology, cluster, windows, tmp)
        stats = {
            TRAIN_FILE: write_window(
                ctx, "train", windows.train_start, windows.rollout, tmp / TRAIN_FILE, show_progress
            ),
            FRESH_FILE: write_window(
                ctx, "fresh", windows.rollout, windows.fresh_end, tmp / FRESH_FILE, show_progress
            ),
        }
        truth = build_truth(topology, cluster, edges, options, windows, stats, scale)
        (tmp / "truth.json").write_bytes(
            orjson.dumps(truth, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"
        )
    return SimulationSummary(
        Path(out_dir), {k: s.lines for k, s in stats.items()}, time.monotonic() - began
    )
