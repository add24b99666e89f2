"""JSON records of a line relation: one per line, or one file as one document.

Formats other than Hubble are often saved pretty-printed (``antctl -o json``,
documentation examples): a file whose first line is a lone ``{`` or ``[`` is
read as one JSON document (an object, or an array of objects), the others one
JSON object per line. Every record keeps ``file_id``, ``line_no`` (a
document's elements: its first line plus the element index, so each record
has its own reference) and ``raw_ref`` ``path:line``.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows import sniff
from recommender.flows.hubble import paths_literal


def document_files(paths: Sequence[str]) -> list[int]:
    """The ``file_id`` of each file whose first line is a lone ``{`` or ``[``.

    Decided from the file's head (read again, as for sniffing), because the line
    relation is a stream that the query may scan only once.
    """
    out = []
    for file_id, path in enumerate(paths):
        head = sniff.read_head(path)
        text = sniff.head_text(head) if head is not None else ""
        first = "" if isinstance(text, sniff.BadHead) else text.split("\n", 1)[0]
        if first.strip() in ("{", "["):
            out.append(file_id)
    return out


def _joined_sql(lines: str, docs: Sequence[int]) -> str:
    """``lines`` with each document file joined into one row (one scan of ``lines``)."""
    if not docs:
        return f"SELECT file_id, line_no, text, reject FROM {lines}"
    is_doc = f"file_id IN ({', '.join(map(str, docs))})"
    return f"""
SELECT file_id, min(line_no) AS line_no, string_agg(text, chr(10) ORDER BY line_no) AS text,
       min(reject) AS reject
FROM {lines}
GROUP BY file_id, CASE WHEN {is_doc} THEN 0 ELSE line_no END"""


def records_sql(lines: str, paths: Sequence[str]) -> str:
    """``file_id, line_no, raw_ref, j`` (JSON or NULL), ``bad`` (why not a record) per record.

    ``bad`` is ``blank`` for an empty line (not a reject), else a reject reason. An
    empty array is one record too (a reject), so that no line goes uncounted.

    DuckDB parses a JSON text again in every JSON function, so each line is parsed
    once to validate it (``try_cast``), once for its type and, for an array, once to
    split it; the type of a record that is the whole line is not asked again.
    """
    parsed = f"""
SELECT file_id, line_no, reject, text, doc, json_type(doc) AS t
FROM (SELECT *, CASE WHEN reject IS NULL THEN try_cast(text AS JSON) END AS doc
      FROM ({_joined_sql(lines, document_files(paths))}))"""
    split = f"""
SELECT *, CASE WHEN t = 'ARRAY' THEN json_extract(doc, '$[*]') END AS items FROM ({parsed})"""
    unnested = f"""
SELECT file_id, line_no, reject, text, doc, t, len(items) AS n,
       unnest(CASE WHEN len(items) > 0 THEN items ELSE [doc] END) AS j,
       generate_subscripts(CASE WHEN len(items) > 0 THEN items ELSE [doc] END, 1) - 1 AS k
FROM ({split})"""
    return f"""
SELECT file_id, line_no + coalesce(k, 0) AS line_no,
       {paths_literal(paths)}[file_id + 1] || ':' || (line_no + coalesce(k, 0)) AS raw_ref, j,
       CASE WHEN reject IS NOT NULL THEN reject
            WHEN doc IS NULL AND trim(text) = '' THEN 'blank'
            WHEN doc IS NULL THEN 'not valid JSON'
            WHEN n = 0 THEN 'an empty JSON array'
            WHEN (CASE WHEN n > 0 THEN json_type(j) ELSE t END) <> 'OBJECT'
            THEN 'not a JSON object' END AS bad
FROM ({unnested})"""
