"""The hourly history and lost events behind evidence sufficiency (``recommend.stability``).

``--store``: the store's hourly rows over the window. ``--flows``: one more
aggregation of the files per hourly bucket (the merged observations are not
rebuilt from it: a connection open across an hour counts once per bucket), and
the time of every Hubble ``lost_events`` record. Stdin cannot be read twice, so
it has no history (the timelines then hold the first and last seen only).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from recommender.flows.lost_events import LostEvent, read_lost_events
from recommender.flows.sources import STDIN
from recommender.model import Inventory
from recommender.observe.engines.base import AggregationEngine

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class History:
    """Hourly observation rows (``bucket`` + observation columns) and lost events;
    None where the input cannot tell."""

    buckets: pd.DataFrame | None
    lost: list[LostEvent] | None


def history_from_args(
    args: argparse.Namespace,
    inventory: Inventory | None,
    engine: str | AggregationEngine,
    *,
    since: object = "window",
) -> History:
    """The history of ``--flows`` or ``--store`` (``since``: ``"window"`` = ``--since``,
    None = the whole store)."""
    if getattr(args, "store", None):
        from recommender.observe.store.read import read_store_buckets

        lo = args.since if since == "window" else since
        return History(read_store_buckets(args.store, lo, args.until), None)
    flows = list(args.flows or ())
    if not flows or STDIN in flows:
        return History(None, None)
    if not isinstance(engine, AggregationEngine):
        from recommender.observe.factory import get_engine

        engine = get_engine(engine)
    buckets = engine.aggregate(flows, inventory, bucket="1h").observations
    return History(buckets, read_lost_events(flows))
