"""The dialect layer: each DuckDB-to-Spark rewrite, without starting Spark.

Equality of whole results is tested in ``test_spark_engine.py``; these tests pin
the rewrites one by one so a sqlglot upgrade that changes one shows up here.
"""

from __future__ import annotations

import re

import duckdb
import pytest

# The rewrite to Spark SQL is sqlglot's: part of the spark extra.
pytest.importorskip("sqlglot", reason="needs the spark extra: pip install -e '.[spark]'")

from recommender.flows.hubble import oriented_packets_sql, records_sql  # noqa: E402
from recommender.flows.hubble_sql import ENDPOINT_SCHEMA, stable_hash_sql  # noqa: E402
from recommender.observe.engines.aggregate import aggregation_stages  # noqa: E402
from recommender.observe.engines.spark_sql import spark_ddl, to_spark  # noqa: E402
from recommender.semantics.resolve import IP_INDEX_COLUMNS, resolved_sql  # noqa: E402

T = {"t": {"a": "VARCHAR", "b": "INTEGER", "l": "VARCHAR[]"}}


def test_ddl_keeps_field_case_and_nesting():
    ddl = spark_ddl(ENDPOINT_SCHEMA)
    assert ddl.startswith("STRUCT<`identity`: BIGINT, `cluster_name`: STRING")
    assert "`workloads`: ARRAY<STRUCT<`name`: STRING, `kind`: STRING>>" in ddl
    assert spark_ddl({"IP": {"source": "VARCHAR"}, "VRRP": "JSON"}) == (
        "STRUCT<`IP`: STRUCT<`source`: STRING>, `VRRP`: STRING>"
    )


def test_try_from_json_becomes_spark_from_json_with_ddl():
    sql = """SELECT try(from_json(a, '{"X": "VARCHAR", "n": ["INTEGER"]}')) AS d FROM t"""
    out = to_spark(sql, T)
    # Scalars parsed as text, then cast: DuckDB reads "7" into an integer field.
    text = "STRUCT<`X`: STRING, `n`: ARRAY<STRING>, `_corrupt_record`: STRING>"
    assert f"FROM_JSON(`t`.`a`, '{text}', MAP('columnNameOfCorruptRecord'" in out
    assert "AS STRUCT<`X`: STRING, `n`: ARRAY<INT>, `_corrupt_record`: STRING>" in out
    # Not JSON (a corrupt record) gives NULL; the parse is bound once by a lambda.
    assert "CASE WHEN netpol_json._corrupt_record IS NULL THEN CAST(netpol_json" in out
    assert out.count("FROM_JSON") == 1
    assert "TRY(" not in out.upper()


def test_identifiers_keep_their_case():
    parsed = """try(from_json(a, '{"IP": {"source": "VARCHAR"}}'))"""
    out = to_spark(f'SELECT d."IP".source AS s FROM (SELECT {parsed} AS d FROM t)', T)
    assert "`IP`" in out
    assert "`ip`" not in out


def test_stars_with_exclude_and_replace_are_expanded():
    out = to_spark("SELECT * EXCLUDE (b) FROM t", T)
    assert out == "SELECT `t`.`a` AS `a`, `t`.`l` AS `l` FROM `t` AS `t`"
    out = to_spark("SELECT * REPLACE (upper(a) AS a) FROM t", T)
    assert "UPPER(`t`.`a`) AS `a`" in out
    assert "`t`.`b` AS `b`" in out


def test_regexp_replace_backreferences_and_global_flag():
    out = to_spark(r"SELECT regexp_replace(a, '(x)(y)', '\2-\1$', 'g') AS r FROM t", T)
    assert r"REGEXP_REPLACE(`t`.`a`, '(x)(y)', '$2-$1\\$')" in out
    with pytest.raises(ValueError, match="'g' flag"):
        to_spark("SELECT regexp_replace(a, 'x', 'y') AS r FROM t", T)


def test_list_length_is_size():
    assert "SIZE(`t`.`l`)" in to_spark("SELECT len(l) AS n FROM t", T)


def test_hash_is_a_64_bit_hash():
    assert "XXHASH64(`t`.`a`)" in to_spark("SELECT hash(a) AS h FROM t", T)


def test_stable_hash_is_the_same_number_in_both_spellings():
    sql = f"SELECT {stable_hash_sql('a')} AS h FROM t"
    out = to_spark(sql, T)
    assert "CONV(SUBSTRING(MD5(`t`.`a`), 1, 14), 16, 10)" in out
    got = duckdb.sql(f"SELECT {stable_hash_sql(repr('abc'))}").fetchall()[0][0]
    assert got == int("900150983cd24f", 16)  # md5('abc') starts 900150983cd24f


def test_grouping_of_two_columns_is_a_bit_mask():
    out = to_spark("SELECT GROUPING(a, b) AS g FROM t GROUP BY GROUPING SETS ((a), (b))", T)
    assert "GROUPING(`t`.`a`)" in out
    assert "GROUPING(`t`.`b`)" in out
    assert "* 2" in out


def test_min_n_and_distinct_list():
    out = to_spark("SELECT min(b, 3) AS m, list(DISTINCT a) AS s FROM t", T)
    assert "SLICE(ARRAY_SORT(COLLECT_LIST(`t`.`b`)), 1, 3)" in out
    assert "COLLECT_SET(`t`.`a`)" in out


def test_time_bucket_from_duckdb_origin():
    sql = "SELECT time_bucket(INTERVAL '1 hours', ts) AS k FROM u"
    out = to_spark(sql, {"u": {"ts": "TIMESTAMP"}})
    assert "TIMESTAMP_MICROS" in out
    assert "946857600000000" in out
    assert "3600000000" in out
    # The origin: DuckDB's default for buckets shorter than a month.
    got = duckdb.sql(
        "SELECT time_bucket(INTERVAL '7 days', TIMESTAMP '2000-01-05 10:00') AS k"
    ).fetchall()[0][0]
    assert str(got) == "2000-01-03 00:00:00"


def test_list_indexes_count_from_one_in_both():
    out = to_spark("SELECT l[1] AS first, (['x', 'y']::VARCHAR[])[b + 1] AS c FROM t", T)
    assert "`t`.`l`[0] AS `first`" in out  # sqlglot shifts a literal index
    assert "ELEMENT_AT((CAST(ARRAY('x', 'y') AS ARRAY<STRING>)), `t`.`b` + 1)" in out


def test_unsupported_try_is_refused():
    with pytest.raises(ValueError, match="no Spark spelling"):
        to_spark("SELECT try(a || 'x') AS x FROM t", T)


@pytest.mark.parametrize("with_inventory", [False, True])
def test_the_whole_pipeline_translates(with_inventory):
    """Every stage of the real SQL goes through the dialect layer."""
    lines = {
        "lines": {"file_id": "INTEGER", "line_no": "BIGINT", "text": "VARCHAR", "reject": "VARCHAR"}
    }
    index = {c: "VARCHAR" for c in IP_INDEX_COLUMNS}
    schema = {**lines, "inv_ip": index, "inv_pod": index}
    resolve = (lambda r: resolved_sql(r, ("x",), "inv_ip", "inv_pod")) if with_inventory else None
    stages, final = aggregation_stages(f"({oriented_packets_sql('lines', ['a'])})", resolve, "1h")
    con = duckdb.connect()  # each stage's columns, from running the stages on no input
    con.execute(
        "CREATE TABLE lines (file_id INTEGER, line_no BIGINT, text VARCHAR, reject VARCHAR)"
    )
    for table in ("inv_ip", "inv_pod"):
        con.execute(f"CREATE TABLE {table} ({', '.join(c + ' VARCHAR' for c in index)})")
    for name, sql in [*stages, ("final", final)]:
        out = to_spark(sql, schema)
        assert "EXCLUDE" not in out
        assert "REPLACE (" not in out
        assert not re.search(r"SELECT \*|`\.\*", out)
        con.execute(f"CREATE TABLE {name} AS {sql}")
        schema[name] = {c[0]: "VARCHAR" for c in con.execute(f"DESCRIBE {name}").fetchall()}
    records = records_sql("lines", ["a"])
    if with_inventory:
        records = resolved_sql(records, ("src", "dst"), "inv_ip", "inv_pod")
    assert "FROM_JSON" in to_spark(records, schema)
