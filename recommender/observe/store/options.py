"""``--store PATH [--since 7d] [--until T]`` for commands that otherwise take ``--flows``.

Wiring a command (``recommend``, ``shadow``, ``tighten``) takes three lines:
make ``--flows`` optional, call ``recommender.cli._args.add_store_arguments``, and replace the
engine call with :func:`observations_from_args` (observations) or
:func:`flow_table_from_args` (flow records, for shadow).
"""

from __future__ import annotations

import argparse

from recommender.errors import InputError
from recommender.model import Inventory
from recommender.observe.engines.base import AggregationEngine, FlowTable, IngestResult
from recommender.observe.factory import get_engine


def _check(args: argparse.Namespace) -> None:
    flows, store = getattr(args, "flows", None), getattr(args, "store", None)
    if flows and store:
        raise InputError(None, "pass either --flows or --store, not both")
    if not flows and not store:
        raise InputError(None, "no flow input given", hint="pass --flows FILE... or --store PATH")
    if not store and (getattr(args, "since", None) or getattr(args, "until", None)):
        raise InputError(None, "--since and --until need --store")


def observations_from_args(
    args: argparse.Namespace,
    inventory: Inventory | None = None,
    *,
    strict: bool = False,
    engine: str | AggregationEngine = "embedded",
) -> IngestResult:
    """Observations (``OBSERVATION_COLUMNS``) and ingest stats from ``--flows`` or ``--store``.

    With ``--store`` the stats are those recorded by the appends that overlap the
    window; pods were resolved against the inventory given to ``observe``.
    """
    _check(args)
    if args.store:
        from recommender.observe.store.read import read_store_observations, read_store_stats

        return IngestResult(
            read_store_observations(args.store, args.since, args.until),
            read_store_stats(args.store, args.since, args.until),
        )
    return _engine(engine).aggregate(args.flows, inventory, strict=strict)


def flow_table_from_args(
    args: argparse.Namespace,
    inventory: Inventory | None = None,
    *,
    strict: bool = False,
    engine: str | AggregationEngine = "embedded",
) -> FlowTable:
    """Flow records from ``--flows``, or one synthetic record per observation and
    verdict class from ``--store`` (see :mod:`recommender.observe.store.flows`)."""
    _check(args)
    if args.store:
        from recommender.observe.store.flows import store_flow_table

        return store_flow_table(args.store, args.since, args.until)
    return _engine(engine).read_flows(args.flows, inventory, strict=strict)


def _engine(engine: str | AggregationEngine) -> AggregationEngine:
    return engine if isinstance(engine, AggregationEngine) else get_engine(engine)
