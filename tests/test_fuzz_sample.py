"""A hypothesis sample of ``bench/fuzz.py``'s store target: damaged stores never crash.

A truncated store, one with flipped bits, a zeroed page or a damaged WAL beside
it either reads, or is refused with one :class:`RecommenderError` line (exit
code 2 in the CLI); never another exception. The full run (100k inputs) is
``bench/fuzz.py --target store``; see bench/README.md "Fuzzing".
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import RecommenderError
from recommender.observe.factory import get_engine
from recommender.observe.store import (
    append_observations,
    read_store_observations,
    read_store_stats,
    store_info,
)
from tests.conftest import ROOT

#: DuckDB's file header and its two database headers (3 x 4 KiB).
HEADERS = 12288


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a small valid store (80 sample lines, one append)."""
    work = tmp_path_factory.mktemp("fuzz-store")
    flows = work / "f.jsonl"
    with gzip.open(ROOT / "data" / "sample" / "flows-train.jsonl.gz", "rb") as fh:
        flows.write_bytes(b"".join(fh.read().splitlines(keepends=True)[:80]))
    result = get_engine().aggregate([str(flows)], bucket="1h")
    store = work / "s.duckdb"
    append_observations(str(store), result.observations, result.stats, sources=[str(flows)])
    return store.read_bytes()


def _read_all(path: Path) -> None:
    """What ``recommend --store`` and ``observe --status`` read."""
    read_store_observations(str(path))
    read_store_stats(str(path))
    store_info(str(path)).format()


def _damaged(data: bytes, draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    kind = draw(st.sampled_from(["truncate", "flip", "page", "wal", "garbage"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))], None
    if kind == "flip":
        out = bytearray(data)
        where = st.integers(0, HEADERS - 1) | st.integers(0, len(data) - 1)
        for offset, bit in draw(
            st.lists(st.tuples(where, st.integers(0, 7)), min_size=1, max_size=8)
        ):
            out[offset] ^= 1 << bit
        return bytes(out), None
    if kind == "page":
        page = draw(st.integers(0, len(data) // 4096 - 1)) * 4096
        out = bytearray(data)
        out[page : page + 4096] = draw(
            st.binary(min_size=4096, max_size=4096) | st.just(bytes(4096))
        )
        return bytes(out), None
    if kind == "wal":
        return data, draw(st.binary(min_size=1, max_size=512))
    return data + draw(st.binary(min_size=1, max_size=2048)), None


@st.composite
def damaged_stores(draw: st.DrawFn, data: bytes) -> tuple[bytes, bytes | None]:
    return _damaged(data, draw)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_a_damaged_store_reads_or_is_refused(
    seed_store: bytes, tmp_path: Path, data: st.DataObject
) -> None:
    store_bytes, wal = data.draw(damaged_stores(seed_store))
    path = tmp_path / "s.duckdb"
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    path.write_bytes(store_bytes)
    if wal is not None:
        Path(str(path) + ".wal").write_bytes(wal)
    error = _error_of(path)
    if error is not None:
        assert error.startswith(str(path)), "the error names the store"
        assert "\n" not in error, "one line"


def _error_of(path: Path) -> str | None:
    """The refusal's message, or None when the damaged store still reads."""
    try:
        _read_all(path)
    except RecommenderError as exc:
        return str(exc)
    return None


def test_the_undamaged_seed_reads(seed_store: bytes, tmp_path: Path) -> None:
    """The sample is meaningful: without damage the store reads and holds rows."""
    path = tmp_path / "s.duckdb"
    path.write_bytes(seed_store)
    assert len(read_store_observations(str(path))) > 0
    assert read_store_stats(str(path)).lines == 80


@pytest.mark.parametrize(
    ("message", "busy"),
    [
        (
            'IO Error: Could not set lock on file "s.duckdb": Conflicting lock is held in python '
            "(PID 7)",
            True,
        ),
        (
            "Error: Corrupt database file: computed checksum 1 does not match stored checksum 2 in "
            "block at location 274432",
            False,
        ),
    ],
    ids=["another-process", "damaged-block"],
)
def test_only_a_real_lock_conflict_is_retried(message: str, busy: bool) -> None:
    """The fuzzer found damaged stores taking the whole 15 s lock timeout: "block"
    contains "lock". Only DuckDB's lock conflict means the store is busy."""
    from recommender.observe.store.db import _is_lock_conflict

    assert _is_lock_conflict(message) is busy
