"""Scan detector: sources that fan out across many ports or peers with few connections.

An edge is a *probe* when its source opened at most
:data:`PROBE_MAX_CONNECTIONS` connections to that (destination, port). A source
is a scanner when its probes show one of three shapes:

* **port scan**: probes on at least :data:`PORT_SCAN_MIN_PORTS` distinct ports
  of one destination;
* **port fan-out**: probes on at least :data:`FANOUT_MIN_PORTS` distinct ports
  across at least two destinations;
* **sweep**: probes to at least :data:`SWEEP_MIN_PEERS` distinct in-cluster
  destinations, most of them (share :data:`SWEEP_MIN_UNDECLARED_SHARE`) on
  ports the destination pods do not declare;
* **external fan-out**: probes to at least :data:`EXTERNAL_FANOUT_MIN_PEERS`
  distinct external addresses (the shape of exfiltration or of a beacon
  rotating addresses; a real external dependency is called again and again).

What stays alone: DNS (port 53, any number of peers), and monitoring scrapers,
which reach many peers on one or two *declared* ports (so they are never a
port scan, never a port fan-out, and never a sweep), and usually with more
than a few connections each. Only the probe edges of a scanner are flagged; its
busy, ordinary edges are kept. For the shapes defined by one kind of peer (an
external fan-out, a sweep of in-cluster peers) only the probes to that kind of
peer are flagged: a pod that beacons to many addresses may still have rare,
legitimate in-cluster edges, and excluding those would break the app.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: A (source, destination, port) edge with at most this many connections is a probe.
PROBE_MAX_CONNECTIONS = 3
#: Distinct probed ports on one destination that make a port scan.
PORT_SCAN_MIN_PORTS = 8
#: Distinct probed ports across destinations that make a port fan-out.
FANOUT_MIN_PORTS = 12
#: Distinct in-cluster destinations probed that make a sweep ...
SWEEP_MIN_PEERS = 8
#: ... when at least this share of the probes hit undeclared ports.
SWEEP_MIN_UNDECLARED_SHARE = 0.5
#: Distinct external addresses probed that make an external fan-out.
EXTERNAL_FANOUT_MIN_PEERS = 8
#: DNS is fan-out by nature and never a scan.
DNS_PORT = 53

#: Columns :func:`detect_scans` reads.
SCAN_COLUMNS: tuple[str, ...] = (
    "src_key",
    "dst_key",
    "dst_in_cluster",
    "port",
    "protocol",
    "connections",
    "declared",
)


@dataclass(frozen=True)
class ScanFinding:
    """One source flagged as a scanner, with the shape and its size."""

    src_key: str
    shape: str
    peers: int
    ports: int
    probes: int

    def describe(self, name: str | None = None) -> str:
        """One line for the summary; ``name`` replaces the source key."""
        return (
            f"{name or self.src_key}: {self.shape} ({self.probes} probes, {self.ports} ports, "
            f"{self.peers} peers)"
        )


def probe_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """Edges with few connections, DNS left out; connections summed per edge."""
    cols = ["src_key", "dst_key", "port", "protocol"]
    agg = (
        edges.groupby(cols, sort=True, dropna=False)
        .agg(
            connections=("connections", "sum"),
            dst_in_cluster=("dst_in_cluster", "max"),
            declared=("declared", "max"),
        )
        .reset_index()
    )
    is_dns = agg["port"] == DNS_PORT
    return agg[(agg["connections"] <= PROBE_MAX_CONNECTIONS) & ~is_dns]


def _shape(probes: pd.DataFrame) -> tuple[str, int, int] | None:
    """The scan shape of one source's probes, with (peers, ports), or None."""
    per_dst = probes.groupby("dst_key")["port"].nunique()
    ports, peers = probes["port"].nunique(), probes["dst_key"].nunique()
    if len(per_dst) and per_dst.max() >= PORT_SCAN_MIN_PORTS:
        return "port scan", peers, ports
    if ports >= FANOUT_MIN_PORTS and peers >= 2:
        return "port fan-out", peers, ports
    external = probes["dst_key"].astype(str).str.startswith("world:")
    if probes.loc[external, "dst_key"].nunique() >= EXTERNAL_FANOUT_MIN_PEERS:
        return "external fan-out", peers, ports
    inside = probes[probes["dst_in_cluster"].astype(bool)]
    if inside["dst_key"].nunique() >= SWEEP_MIN_PEERS:
        undeclared = float((~inside["declared"].astype(bool)).mean())
        if undeclared >= SWEEP_MIN_UNDECLARED_SHARE:
            return "sweep", peers, ports
    return None


def _shape_probes(probes: pd.DataFrame, shape: str) -> pd.DataFrame:
    """The probes that make up ``shape``: external ones for an external fan-out,
    in-cluster ones for a sweep, all of them for port scans and port fan-outs."""
    if shape == "external fan-out":
        return probes[probes["dst_key"].astype(str).str.startswith("world:")]
    if shape == "sweep":
        return probes[probes["dst_in_cluster"].astype(bool)]
    return probes


def detect_scans(edges: pd.DataFrame) -> tuple[pd.Series, list[ScanFinding]]:
    """Flag the probe edges of scanning sources.

    Parameters
    ----------
    edges
        One row per observation with :data:`SCAN_COLUMNS`: ``declared`` tells
        whether the destination pods declare ``port``; ``dst_in_cluster`` whether
        the destination is a pod.

    Returns
    -------
    mask, findings
        A boolean Series aligned with ``edges`` (True = suspicious) and one
        finding per scanning source, sorted by source.
    """
    mask = pd.Series(False, index=edges.index)
    if edges.empty:
        return mask, []
    probes = probe_edges(edges)
    # Every shape needs at least this many probes; most sources have far fewer.
    least = min(PORT_SCAN_MIN_PORTS, FANOUT_MIN_PORTS, SWEEP_MIN_PEERS, EXTERNAL_FANOUT_MIN_PEERS)
    sizes = probes.groupby("src_key").size()
    probes = probes[probes["src_key"].isin(sizes[sizes >= least].index)]
    findings: list[ScanFinding] = []
    for src, group in probes.groupby("src_key", sort=True):
        shape = _shape(group)
        if shape is None:
            continue
        findings.append(ScanFinding(str(src), shape[0], shape[1], shape[2], len(group)))
        group = _shape_probes(group, shape[0])
        keys = set(zip(group["dst_key"], group["port"], group["protocol"], strict=True))
        rows = edges["src_key"] == src
        hit = [
            (d, p, q) in keys
            for d, p, q in zip(
                edges.loc[rows, "dst_key"],
                edges.loc[rows, "port"],
                edges.loc[rows, "protocol"],
                strict=True,
            )
        ]
        mask.loc[rows] = hit
    return mask, findings
