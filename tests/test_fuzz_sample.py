"""Hypothesis samples of ``bench/fuzz.py``'s targets.

Store: a truncated store, one with flipped bits, a zeroed page or a damaged WAL
beside it either reads, or is refused with one :class:`RecommenderError` line
(exit code 2 in the CLI); never another exception. The fuzzer's in-process check
reads exactly what the intact store holds, or refuses.

Flow formats (``aws``, ``gcp``, ``calico``, ``flowrecord``): a batch of mutated
lines, built by the fuzzer from its seed corpus, is read by the format's reader
with every line accounted for (a flow record, a counted reject or a counted
non-flow line), and nothing raises. The full runs (100k inputs per target) are
``bench/fuzz.py --target NAME``; see bench/README.md "Fuzzing".
"""

from __future__ import annotations

import gzip
import importlib.util
import random
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import RecommenderError
from recommender.observe.engines.embedded import EmbeddedEngine
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


# ---------------------------------------------------------------------------
# The fuzzer's own targets
# ---------------------------------------------------------------------------


def _load_fuzz() -> ModuleType:
    """``bench/fuzz.py`` as a module (bench/ is not a package)."""
    name = "netpol_bench_fuzz"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "fuzz.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


FUZZ = _load_fuzz()
#: Target -> the ``--format`` its reader is (the check passes it, as the CLI sample does).
FORMATS = {"aws": "aws_vpc", "gcp": "gcp_vpc", "calico": "calico", "flowrecord": "flowrecord"}
ENGINE = EmbeddedEngine(threads=1)


def _stats(tmp_path: Path, target: str, head: list[bytes], lines: list[bytes]):
    path = tmp_path / f"batch{FUZZ.REGISTRY[target].suffix}"
    path.write_bytes(b"\n".join(head + lines) + b"\n")
    engine = EmbeddedEngine(threads=1)
    engine.flow_format = FORMATS[target]
    return engine.aggregate([str(path)]).stats


@pytest.mark.parametrize("target", sorted(FORMATS))
def test_the_seed_lines_are_valid_records(tmp_path: Path, target: str) -> None:
    """The corpora are meaningful: unmutated, every line of every layout is read (a flow
    record, a header, or a NODATA/SKIPDATA or Calico duplicate-report line), no reject."""
    corpus = FUZZ.REGISTRY[target].corpus()
    assert len(corpus) >= 4
    layouts = corpus if FUZZ.REGISTRY[target].header else [b"\n" + b"\n".join(corpus)]
    for layout in layouts:
        header, *rows = layout.split(b"\n")
        stats = _stats(tmp_path, target, [header] if header else [], rows)
        assert stats.rejected == 0, (target, header[:60], stats.reject_samples[:2])
        assert stats.flow_records >= 1
        assert stats.lines == len(rows) + bool(header)


@pytest.mark.parametrize("target", sorted(FORMATS))
@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_a_mutated_batch_is_read_with_every_line_accounted_for(
    tmp_path: Path, target: str, seed: int
) -> None:
    rng = random.Random(seed)
    corpus = FUZZ.REGISTRY[target].corpus()
    head, lines = FUZZ.batch_lines(target, corpus, rng, 40)
    data = b"\n".join(head + lines) + b"\n"
    stats = _stats(tmp_path, target, head, lines)
    expected = data.count(b"\n")
    assert stats.lines == expected
    assert stats.flow_records + stats.rejected + sum(stats.non_flow.values()) == expected
    for sample in stats.reject_samples:
        assert sample.startswith(str(tmp_path / "batch")), "a reject names file and line"
        assert "\n" not in sample


def test_a_dropped_aws_header_rejects_its_lines_counted(tmp_path: Path) -> None:
    """A header-damaged batch still accounts for every line: a custom-format line of 19
    fields without its header is neither the default format (14) nor all fields (29)."""
    layout = next(c for c in FUZZ.aws_corpus() if c.startswith(b"${version}"))
    rows = layout.split(b"\n")[1:]
    stats = _stats(tmp_path, "aws", [], rows)
    assert (stats.lines, stats.rejected, stats.flow_records) == (len(rows), len(rows), 0)
    assert "19 fields and no header line" in stats.reject_samples[0]


def test_the_in_process_store_check_tells_the_wal_commit_apart(
    seed_store: bytes, tmp_path: Path
) -> None:
    """The store target compares digests: they must see the WAL's one committed row,
    and a store cut inside its headers is refused with one line naming it."""
    path = tmp_path / "input.duckdb"
    path.write_bytes(seed_store)
    intact = FUZZ._check_store(str(path))
    assert intact["rows"]["appends"] == 1
    assert intact["rows"]["observations"] > 0
    assert FUZZ._check_store(str(path)) == intact, "reading changes nothing"
    wal = FUZZ._make_wal(path)
    assert wal, "the writer died before the checkpoint: a WAL is left"
    replayed = FUZZ._check_store(str(path))
    assert replayed["rows"]["sources"] == intact["rows"]["sources"] + 1
    assert replayed["digest"] != intact["digest"]
    path.write_bytes(seed_store[:5000])
    Path(str(path) + ".wal").unlink(missing_ok=True)
    with pytest.raises(RecommenderError) as refused:
        FUZZ._check_store(str(path))
    assert str(refused.value).startswith(str(path))
    assert "\n" not in str(refused.value)
