"""The dialect layer: the engines' one normalization SQL, rewritten for Spark SQL.

Every rule (orientation, classification, label normalization, de-duplication,
aggregation) is written once, as DuckDB SQL, in :mod:`recommender.flows.hubble_sql`,
:mod:`recommender.flows.hubble`, :mod:`recommender.semantics.resolve` and
:mod:`recommender.observe.engines.aggregate`. The Spark engine does not keep a second copy: it
parses that SQL with ``sqlglot`` and rewrites the few constructs whose spelling
or meaning differs, listed here next to the reason. ``tests/test_spark_sql.py``
pins each rewrite, and ``tests/test_spark_engine.py`` checks that both engines
give identical observations.

The rewrites
------------
``* EXCLUDE`` / ``* REPLACE``
    Spark 3.5 has neither: stars are expanded from the known input schemas.
``try(from_json(x, '<duckdb json structure>'))``
    Spark's ``from_json(x, '<DDL>')`` with the same structure, every scalar read as
    text and then cast (DuckDB converts ``"7"`` to a number, Spark's parser would not),
    single quotes refused (DuckDB does), and NULL for text that is not a JSON object
    (through Spark's corrupt-record field). Spark returns NULL
    for text that is not JSON (mode PERMISSIVE) and, with
    ``spark.sql.json.enablePartialResults``, keeps the fields that do parse, as
    DuckDB's lenient ``from_json`` does. A ``JSON`` field becomes ``STRING``
    (Spark keeps the raw JSON text of a nested value).
``len(list)``
    ``size(list)``. Our SQL uses ``len`` on lists only; ``size(NULL)`` is NULL
    with ``spark.sql.legacy.sizeOfNull=false`` (:data:`SESSION_CONF`).
``json_valid(x)``, ``json_type(x)``
    ``get_json_object(x, '$') IS NOT NULL``; ``'OBJECT'`` when the text starts
    with ``{``. Both feed only the wording of a reject reason.
``hash(x)``
    ``xxhash64(x)``: a 64-bit hash. It only joins rows of one run (never in the
    output), so its values may differ between engines; a 32-bit hash would
    collide at a few hundred thousand distinct endpoints.
``to_json(text)``
    ``to_json(array(text))`` without its brackets: Spark encodes no bare string.
``regexp_replace(s, p, r, 'g')``
    Spark always replaces every match and writes back-references as ``$1``.
``min(x, n)`` (the ``n`` smallest values)
    ``slice(array_sort(collect_list(x)), 1, n)``.
``list(DISTINCT x)``
    ``collect_set(x)``: the order of the set is not defined in either engine;
    :func:`recommender.observe.engines.aggregate.finish` sorts it.
``('0x' || hex)::BIGINT``
    ``CAST(conv(hex, 16, 10) AS BIGINT)`` (Spark does not read ``0x`` text).
``UBIGINT``, ``UINTEGER``
    ``BIGINT`` (Spark has no unsigned types; our values fit).
``GROUPING(a, b)``
    ``grouping(a) * 2 + grouping(b)``: the same bit mask (Spark's ``grouping``
    takes one column, its ``grouping_id`` all the grouping columns).
``time_bucket(interval, t)``
    Buckets from DuckDB's default origin, 2000-01-03 00:00 UTC (a Monday), in
    microseconds. (DuckDB's ``TIMESTAMP`` is Spark's ``TIMESTAMP_NTZ``.)
``list[i]`` with a computed ``i``
    ``element_at(list, i)``: both count from 1 (sqlglot shifts literal indexes only).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import NormalizationStrategy
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.optimizer.qualify import qualify

#: Spark settings the rewritten SQL relies on (see the module docstring).
SESSION_CONF: dict[str, str] = {
    "spark.sql.legacy.sizeOfNull": "false",
    "spark.sql.json.enablePartialResults": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.caseSensitive": "true",
    "spark.sql.ansi.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}

_SCALARS = {
    "VARCHAR": "STRING",
    "INTEGER": "INT",
    "UINTEGER": "BIGINT",
    "UBIGINT": "BIGINT",
    "BIGINT": "BIGINT",
    "BOOLEAN": "BOOLEAN",
    "JSON": "STRING",
    "DOUBLE": "DOUBLE",
}

#: DuckDB's default ``time_bucket`` origin for intervals under a month, in epoch µs.
_BUCKET_ORIGIN_US = 946857600 * 1_000_000
_INTERVAL_US = {
    "microsecond": 1,
    "millisecond": 1000,
    "second": 1_000_000,
    "minute": 60_000_000,
    "hour": 3_600_000_000,
    "day": 86_400_000_000,
}


class _CaseSensitiveDuckDB(DuckDB):
    """DuckDB as we write it: identifiers keep their case (``f."IP"`` is not ``f.ip``).

    Spark runs with ``spark.sql.caseSensitive``, because Hubble's JSON has both
    spellings at different levels.
    """

    NORMALIZATION_STRATEGY = NormalizationStrategy.CASE_SENSITIVE


def spark_ddl(structure: object, *, as_text: bool = False) -> str:
    """A DuckDB ``from_json`` structure as a Spark DDL type; ``as_text`` makes every
    scalar a STRING (see :func:`_from_json`).

    >>> spark_ddl({"a": "VARCHAR", "B": ["INTEGER"], "c": {"d": "JSON"}})
    'STRUCT<`a`: STRING, `B`: ARRAY<INT>, `c`: STRUCT<`d`: STRING>>'
    >>> spark_ddl({"n": "UBIGINT"}, as_text=True)
    'STRUCT<`n`: STRING>'
    """
    if isinstance(structure, str):
        return "STRING" if as_text else _SCALARS[structure]
    if isinstance(structure, list):
        return f"ARRAY<{spark_ddl(structure[0], as_text=as_text)}>"
    if isinstance(structure, dict):
        fields = ", ".join(
            f"`{name}`: {spark_ddl(t, as_text=as_text)}" for name, t in structure.items()
        )
        return f"STRUCT<{fields}>"
    raise TypeError(f"not a from_json structure: {structure!r}")


def to_spark(sql: str, schema: Mapping[str, Mapping[str, str]]) -> str:
    """``sql`` (DuckDB) as Spark SQL.

    Parameters
    ----------
    sql
        One SELECT statement as the embedded engine runs it.
    schema
        Column names (and DuckDB types) of every table or view it reads, so
        stars can be expanded.
    """
    tree = sqlglot.parse_one(sql, read=_CaseSensitiveDuckDB)
    tree = qualify(
        tree,
        schema={k: dict(v) for k, v in schema.items()},
        dialect=_CaseSensitiveDuckDB,
        expand_stars=True,
        validate_qualify_columns=False,
        quote_identifiers=True,
        identify=True,
    )
    tree = tree.transform(_rewrite)
    return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)


def _anon(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Try):
        inner = node.this
        if isinstance(inner, exp.FromJson) or (
            isinstance(inner, exp.Anonymous) and inner.name.lower() == "from_json"
        ):
            return _from_json(inner)
        if isinstance(inner, exp.JSONExtractScalar):
            return inner  # Spark's get_json_object returns NULL on bad JSON already
        raise ValueError(f"no Spark spelling for try({inner.sql('duckdb')})")
    if isinstance(node, (exp.FromJson,)):
        return _from_json(node)
    if isinstance(node, exp.Length):
        return exp.ArraySize(this=node.this)
    if isinstance(node, exp.JSONType):
        starts = exp.Like(
            this=exp.Trim(this=node.this, position="LEADING"), expression=exp.Literal.string("{%")
        )
        return exp.If(
            this=starts, true=exp.Literal.string("OBJECT"), false=exp.Literal.string("OTHER")
        )
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "json_valid":
            got = _anon("get_json_object", node.expressions[0], exp.Literal.string("$"))
            return exp.Not(this=exp.Is(this=got, expression=exp.Null()))
        if name == "hash":
            return _anon("xxhash64", *node.expressions)
        if name == "to_json":
            # Our SQL encodes strings only; Spark's to_json takes an array, not a string.
            listed = _anon("to_json", _anon("array", node.expressions[0]))
            return _anon(
                "regexp_extract", listed, exp.Literal.string(r"^\[(.*)\]$"), exp.Literal.number(1)
            )
    if isinstance(node, exp.RegexpReplace):
        return _regexp_replace(node)
    if isinstance(node, exp.Min) and node.args.get("count") is not None:
        values = _anon("collect_list", node.this)
        return _anon(
            "slice", _anon("array_sort", values), exp.Literal.number(1), node.args["count"]
        )
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Distinct):
        return _anon("collect_set", node.this.expressions[0])
    if isinstance(node, exp.Cast) and _is_hex_cast(node):
        # '0x' || hex digits cast to an integer (hubble_sql.stable_hash_sql).
        digits = node.this.unnest().expression
        conv = _anon("conv", digits, exp.Literal.number(16), exp.Literal.number(10))
        return exp.Cast(this=conv, to=exp.DataType.build("BIGINT"))
    if isinstance(node, exp.DataType) and node.this in _UNSIGNED:
        return exp.DataType.build("BIGINT")
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1:
        index = node.expressions[0]
        if not isinstance(index, exp.Literal):
            # sqlglot shifts literal list indexes (DuckDB counts from 1, Spark's [] from 0)
            # but leaves computed ones as written: element_at counts from 1 like DuckDB.
            return _anon("element_at", node.this, index)
    if isinstance(node, exp.DateBin):
        return _time_bucket(node)
    if isinstance(node, exp.Grouping) and len(node.expressions) > 1:
        # DuckDB's GROUPING(a, b) is the bit mask grouping(a) * 2 + grouping(b).
        mask: exp.Expression = exp.Literal.number(0)
        for column in node.expressions:
            mask = exp.Add(
                this=exp.Mul(this=exp.paren(mask), expression=exp.Literal.number(2)),
                expression=exp.Grouping(expressions=[column]),
            )
        return exp.paren(mask)
    return node


_UNSIGNED = {exp.DataType.Type.UBIGINT, exp.DataType.Type.UINT, exp.DataType.Type.USMALLINT}


def _is_hex_cast(node: exp.Cast) -> bool:
    inner = node.this.unnest()
    return (
        isinstance(inner, exp.DPipe)
        and isinstance(inner.this, exp.Literal)
        and inner.this.this == "0x"
        and node.to.this in (exp.DataType.Type.BIGINT, exp.DataType.Type.UBIGINT)
    )


def _from_json(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.FromJson):
        text, structure = node.this, node.expression
    else:
        text, structure = node.expressions[0], node.expressions[1]
    if not isinstance(structure, exp.Literal) or not structure.is_string:
        raise ValueError("from_json needs a literal structure")
    # DuckDB's from_json converts between JSON scalars and the asked type (the
    # protojson uint64 "num_events_lost": "7" becomes 7); Spark's gives NULL. So
    # Spark parses every scalar as text and casts the struct, field by field.
    parsed = json.loads(structure.this)
    if not isinstance(parsed, dict):
        raise ValueError("from_json needs an object structure")
    # Text that is not a JSON object must give NULL, as in DuckDB, not a struct of
    # NULLs or (with partial results) of the fields before the damage: Spark marks it
    # in a corrupt-record field. The lambda binds the parse once (a CASE would parse
    # twice: Spark does not share subexpressions across CASE branches).
    corrupt = {**parsed, _CORRUPT: "VARCHAR"}
    text_ddl = spark_ddl(corrupt, as_text=True)
    target = exp.DataType.build(spark_ddl(corrupt), dialect="spark")
    options = _anon(
        "map",
        exp.Literal.string("columnNameOfCorruptRecord"),
        exp.Literal.string(_CORRUPT),
        exp.Literal.string("allowSingleQuotes"),
        exp.Literal.string("false"),
    )
    raw = _anon("from_json", text, exp.Literal.string(text_ddl), options)
    var = exp.to_identifier("netpol_json")
    body = exp.Case(
        ifs=[
            exp.If(
                this=exp.Is(
                    this=exp.Dot.build([exp.column(var), exp.to_identifier(_CORRUPT)]),
                    expression=exp.Null(),
                ),
                true=exp.Cast(this=exp.column(var), to=target),
            )
        ]
    )
    lam = exp.Lambda(this=body, expressions=[var])
    return _anon("element_at", _anon("transform", _anon("array", raw), lam), exp.Literal.number(1))


_CORRUPT = "_corrupt_record"


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    modifiers = node.args.get("modifiers")
    replacement = node.args["replacement"]
    # Without 'g' DuckDB replaces the first match only; Spark has no such form.
    if modifiers is None or modifiers.name != "g":
        raise ValueError("regexp_replace without the 'g' flag has no Spark spelling")
    if not (isinstance(replacement, exp.Literal) and replacement.is_string):
        raise ValueError("regexp_replace needs a literal replacement")
    # DuckDB (RE2) writes back-references \1; Java writes $1 and needs a literal $ escaped.
    text = re.sub(r"\\(\d)", r"$\1", replacement.this.replace("$", "\\$"))
    return _anon("regexp_replace", node.this, node.expression, exp.Literal.string(text))


def _time_bucket(node: exp.DateBin) -> exp.Expression:
    interval = node.this
    text = interval.sql("duckdb").lower() if interval is not None else ""
    match = re.search(r"'?(\d+)\s*'?\s*(microsecond|millisecond|second|minute|hour|day)s?", text)
    if not match:
        raise ValueError(f"time_bucket interval {text!r} has no Spark spelling")
    width = int(match.group(1)) * _INTERVAL_US[match.group(2)]
    # DuckDB's TIMESTAMP is Spark's TIMESTAMP_NTZ; unix_micros takes a TIMESTAMP (the
    # session time zone is UTC, SESSION_CONF), and the bucket goes back to NTZ.
    ltz = exp.Cast(this=node.expression, to=exp.DataType.build("TIMESTAMP"))
    micros = _anon("unix_micros", ltz)
    offset = exp.Sub(this=micros, expression=exp.Literal.number(_BUCKET_ORIGIN_US))
    start = exp.Add(
        this=exp.Mul(
            this=exp.paren(
                exp.IntDiv(this=exp.paren(offset), expression=exp.Literal.number(width))
            ),
            expression=exp.Literal.number(width),
        ),
        expression=exp.Literal.number(_BUCKET_ORIGIN_US),
    )
    return exp.Cast(this=_anon("timestamp_micros", start), to=exp.DataType.build("TIMESTAMP_NTZ"))
