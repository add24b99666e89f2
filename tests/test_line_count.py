"""Line accounting (issue 18): every physical ``\\n`` line is counted exactly once.

The Hubble fuzz found files whose ``stats.lines`` exceeded their newlines: records
joined their distinct endpoints on ``hash()`` alone, and DuckDB's hash maps distinct
values together (a NULL endpoint and one of NULL fields; ``[]`` and ``[null]``).
"""

from __future__ import annotations

import json
from pathlib import Path

from recommender.observe.engines.embedded import EmbeddedEngine
from recommender.observe.store.stream import LineReader


def _flow(**extra: object) -> dict[str, object]:
    """A flow with a destination endpoint only and no IP (its source is all NULL)."""
    flow: dict[str, object] = {
        "time": "2026-11-02T01:05:18.965281379Z",
        "verdict": "FORWARDED",
        "l4": {"TCP": {"source_port": 50730, "destination_port": 9187}},
        "destination": {"identity": 35422, "namespace": "data", "labels": ["k8s:app=pg"]},
        "traffic_direction": "INGRESS",
        "is_reply": False,
    }
    flow.update(extra)
    return {"flow": flow, "node_name": "n1", "time": flow["time"]}


def _stats(tmp_path: Path, lines: list[str]):
    path = tmp_path / "flows.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return EmbeddedEngine().aggregate([str(path)]).stats


def test_empty_endpoint_beside_a_reject_is_counted_once(tmp_path: Path) -> None:
    stats = _stats(tmp_path, [json.dumps(_flow()), '{"flow": {"time": '])
    assert stats.lines == 2
    assert stats.flow_records == 1
    assert sum(stats.rejects.values()) == 1


def test_lone_carriage_return_is_not_a_line_end(tmp_path: Path) -> None:
    line = json.dumps(_flow()).replace('"n1"', '"n\\r1"')
    stats = _stats(tmp_path, [line.replace("INGRESS", "INGR\rESS"), line])
    assert stats.lines == 2
    assert stats.flow_records + sum(stats.rejects.values()) == 2


def test_stream_reader_splits_at_newline_only() -> None:
    reader = LineReader()
    assert reader.feed(b"a\rb\r\nc\n") == [b"a\rb\r\n", b"c\n"]
    assert reader.feed(b"d\x0be\n") == [b"d\x0be\n"]
