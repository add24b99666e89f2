"""Semantic diff of two NetworkPolicy sets (``netpol diff``).

:func:`diff_policies` compares the verdicts of two sets over a finite universe
(:func:`build_universe`); :class:`FlowReplay` judges observed flows against
both; :mod:`recommender.report.diff` turns the result into text, JSON and
Markdown.
"""

from recommender.diff.core import (
    UNIVERSE_NOTE,
    DiffResult,
    Engine,
    FlowReplay,
    ReachChange,
    Universe,
    build_universe,
    compile_pair,
    diff_policies,
    group_changes,
    side_signature,
)
from recommender.diff.universe import (
    address_probes,
    external_universe,
    port_probes,
    port_regions,
)

__all__ = [
    "UNIVERSE_NOTE",
    "DiffResult",
    "Engine",
    "FlowReplay",
    "ReachChange",
    "Universe",
    "address_probes",
    "build_universe",
    "compile_pair",
    "diff_policies",
    "external_universe",
    "group_changes",
    "port_probes",
    "port_regions",
    "side_signature",
]
