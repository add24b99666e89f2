"""Argument types shared by several commands."""

from __future__ import annotations

import argparse
from typing import Any


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be {minimum} or more, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 0, with a one-line error otherwise.

    >>> non_negative_int("3")
    3
    """
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An ``argparse`` type: an integer >= 1.

    >>> positive_int("1")
    1
    """
    return _int_at_least(text, 1)


def spark_conf_item(text: str) -> tuple[str, str]:
    """An ``argparse`` type: a ``key=value`` Spark setting.

    >>> spark_conf_item("spark.executor.memory=8g")
    ('spark.executor.memory', '8g')
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def add_format_argument(parser: argparse.ArgumentParser) -> None:
    """``--format``: the format of the ``--flows`` files (default: sniffed per file)."""
    from recommender.flows.formats import names

    parser.add_argument(
        "--format",
        choices=names(),
        help="format of every --flows file (default: detected per file from its content; "
        "see docs/formats.md)",
    )


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format``, ``--engine``, ``--spark-master`` and ``--spark-conf`` (see
    :func:`engine_from_args`)."""
    add_format_argument(parser)
    parser.add_argument(
        "--engine",
        default="embedded",
        choices=("embedded", "spark"),
        help="aggregation engine (default: embedded; spark needs the 'spark' extra and Java 17)",
    )
    parser.add_argument(
        "--spark-master",
        metavar="URL",
        help="Spark master for --engine spark: local[*] (default), local[N], "
        "spark://HOST:PORT, yarn, k8s://https://HOST:PORT",
    )
    parser.add_argument(
        "--spark-conf",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        type=spark_conf_item,
        help="a Spark setting for --engine spark, repeatable (e.g. spark.executor.memory=8g)",
    )


def engine_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~recommender.observe.engines.base.AggregationEngine` the arguments ask for.

    Raises
    ------
    InputError
        Spark options without ``--engine spark``.
    MissingDependencyError
        ``--engine spark`` without pyspark installed.
    """
    from recommender.errors import InputError, MissingDependencyError
    from recommender.observe.factory import get_engine

    master = getattr(args, "spark_master", None)
    conf = dict(getattr(args, "spark_conf", None) or [])
    if args.engine != "spark" and (master or conf):
        raise InputError(None, "--spark-master and --spark-conf need --engine spark")
    try:
        engine = get_engine(args.engine, master=master, conf=conf)
    except MissingDependencyError as exc:
        raise MissingDependencyError(exc.feature, exc.install, USE_EMBEDDED) from None
    engine.flow_format = getattr(args, "format", None)
    if args.engine == "spark":
        # Spark's JVM logs to the terminal; keep it off unless the user debugs.
        engine.quiet = not getattr(args, "debug", False)  # type: ignore[attr-defined]
    return engine


#: What to do instead when Spark is not available.
USE_EMBEDDED = "or drop --engine spark to use the embedded engine (the default)"


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--store``, ``--since`` and ``--until``."""
    parser.add_argument(
        "--store",
        metavar="PATH",
        help="read observations from a store (netpol observe) instead of --flows",
    )
    parser.add_argument(
        "--since",
        metavar="WHEN",
        help="with --store: from this time (2026-11-02T00:00:00Z) or this long "
        "before the newest observation (7d)",
    )
    parser.add_argument(
        "--until",
        metavar="WHEN",
        help="with --store: up to this time or duration back (default: all)",
    )


# ---------------------------------------------------------------------------
# Options several commands share: one definition each, the help text per command.
# ---------------------------------------------------------------------------

#: The default help of ``--flows``.
FLOWS_HELP = "flow files or globs, plain or .gz, - for stdin (formats: see docs/formats.md)"


def add_force_argument(parser: Any, help: str = "replace existing output files") -> None:
    """``--force``: replace outputs that exist (every output is refused otherwise)."""
    parser.add_argument("--force", action="store_true", help=help)


def add_flows_argument(parser: Any, **kwargs: Any) -> None:
    """``--flows FILE [FILE ...]``; ``kwargs`` (``required``, ``help``, ...) as for argparse."""
    kwargs.setdefault("nargs", "+")
    kwargs.setdefault("metavar", "FILE")
    kwargs.setdefault("help", FLOWS_HELP)
    parser.add_argument("--flows", **kwargs)


def add_inventory_argument(parser: Any, **kwargs: Any) -> None:
    """``--inventory FILE [FILE ...]``: the cluster inventory (``kubectl get -o json`` or
    ``netpol inventory``)."""
    kwargs.setdefault("nargs", "+")
    kwargs.setdefault("metavar", "FILE")
    parser.add_argument("--inventory", **kwargs)


def add_strict_argument(parser: Any, **kwargs: Any) -> None:
    """``--strict``: stop with exit code 2 at the first rejected flow line."""
    kwargs.setdefault("action", "store_true")
    kwargs.setdefault("help", "stop with exit code 2 at the first rejected flow line")
    parser.add_argument("--strict", **kwargs)
