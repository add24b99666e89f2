"""Choosing an engine by name: the one module that knows both engines.

Kept out of :mod:`recommender.observe.engines.base`, which both engines import,
so that the interface does not import its implementations (a circle). Both
engines are imported only when chosen: start-up stays cheap and ``spark``
without pyspark fails with one line.

>>> get_engine("embedded").name
'embedded'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from recommender.errors import InputError, MissingDependencyError
from recommender.observe.engines.base import AggregationEngine


def get_engine(
    name: str = "embedded",
    *,
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
) -> AggregationEngine:
    """The engine called ``name``: ``embedded`` (DuckDB) or ``spark``.

    ``master`` and ``conf`` configure the Spark session (``spark`` only).

    Raises
    ------
    MissingDependencyError
        ``spark`` without pyspark (or sqlglot) installed.
    InputError
        An unknown engine name.
    """
    if name == "embedded":
        from recommender.observe.engines.embedded import EmbeddedEngine

        return EmbeddedEngine()
    if name == "spark":
        missing = [m for m in ("pyspark", "sqlglot") if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                "--engine spark", "pip install 'netpol-recommender[spark]' (and Java 17)"
            )
        from recommender.observe.engines.spark import SparkEngine

        return SparkEngine(master=master, conf=conf)
    raise InputError(None, f"unknown engine {name!r}", hint="choose embedded or spark")
