"""SIGKILL at seeded moments: no half-written output, a store that lost at most one interval.

Each test starts the real CLI (``sys.executable cli.py ...``) several times at
once and kills each run at its own moment, picked by a seeded RNG:

* once at a random moment of start-up and ingest (before anything is written);
* the others at a random moment *inside the writing window*: the window is
  measured on a clean run (from the temp entry appearing beside the output to
  the output appearing), and each kill waits for its run's temp entry, then
  sleeps a seeded fraction of that window. Timing the whole run would mostly
  hit the ~5 s of imports and never the few milliseconds of writing.

Then the output must be absent or byte-equal to a clean run's, the only other
entries beside it clearly temp (``.<out>.netpol-*``), and the next run must
remove those and write the same bytes. For ``observe --store`` the store must
open, hold exactly a prefix of the stream at checkpoint granularity (at least
up to the last checkpoint the process reported), feed ``recommend --store``,
and take the next append.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recommender.cli.parser import main
from recommender.errors import InputError
from recommender.observe.factory import get_engine
from recommender.observe.store import (
    StreamAppender,
    StreamOptions,
    read_store_buckets,
    read_store_stats,
)
from recommender.observe.store.db import connect
from recommender.policy_io.atomic import remove_stale_temps
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample"
BROADENED = ROOT / "tests" / "fixtures" / "tighten" / "webshop-broadened.yaml"
INVENTORY = str(SAMPLE / "inventory.json")
SEED = 20261203
#: Poll period of the watchers (seconds).
POLL_S = 0.0005


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """The first 600 lines of the bundled training sample."""
    with gzip.open(SAMPLE / "flows-train.jsonl.gz", "rb") as fh:
        return fh.read().splitlines(keepends=True)[:600]


@pytest.fixture(scope="module")
def flows(lines: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kill-flows") / "flows.jsonl"
    path.write_bytes(b"".join(lines))
    return path


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _cli(*argv: str, **kwargs: object) -> subprocess.Popen[bytes]:
    kwargs.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *argv], cwd=ROOT, stdout=subprocess.DEVNULL, **kwargs
    )  # type: ignore[call-overload]


def _temps(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.netpol-*"))


def _wait_until(
    cond: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 120.0
) -> bool:
    """Poll ``cond`` until true (True), the process ended or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        if proc.poll() is not None:
            return cond()
        time.sleep(POLL_S)
    return False


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _check_complete(out: Path, reference: dict[str, bytes]) -> None:
    """Every YAML parses, each kustomization lists exactly its files, bytes as the clean run."""
    for path in out.rglob("*.yaml"):
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs, path
        assert None not in docs, path
    for kust in out.rglob("kustomization.yaml"):
        listed = set(yaml.safe_load(kust.read_text())["resources"])
        present = {
            p.name
            for p in kust.parent.iterdir()
            if p.name != "kustomization.yaml" and (p.is_dir() or p.suffix == ".yaml")
        }
        assert listed == present, kust
    assert _tree(out) == reference


def _write_window(argv: Callable[[Path], list[str]], out: Path) -> float:
    """Run the command in-process while a thread times the write: temp entry -> output."""
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set() and "out" not in seen:
            now = time.monotonic()
            if "tmp" not in seen and _temps(out):
                seen["tmp"] = now
            if out.exists():
                seen["out"] = now
            time.sleep(POLL_S)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        assert main(argv(out)) == 0
        returned = time.monotonic()
    finally:
        done.set()
        thread.join()
    if "out" not in seen and out.exists():  # a loaded machine can starve the watcher
        seen["out"] = time.monotonic()
    assert out.is_dir()
    # Under load the watcher may not run between the rename and the return: the
    # return is then the latest moment the output can have appeared.
    appeared = seen.get("out", returned)
    return max(appeared - seen.get("tmp", appeared), 0.002)


def _kill_run(argv: list[str], out: Path, delay: float, in_write: bool) -> subprocess.Popen[bytes]:
    """Start the CLI and SIGKILL it ``delay`` s after start (or after its temp entry
    appears, when ``in_write``)."""
    proc = _cli(*argv)
    if in_write:
        assert _wait_until(lambda: bool(_temps(out)), proc) or proc.returncode == 0
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=60)
    return proc


def _killed_outputs(
    argv: Callable[[Path], list[str]],
    tmp: Path,
    window: float,
    prepare: Callable[[Path], None],
    seed: int,
) -> list[Path]:
    """Three concurrent runs, killed at seeded moments; return their output paths."""
    rng = random.Random(seed)
    plans = [
        (rng.uniform(0.5, 3.0), False),
        (rng.uniform(0, window), True),
        (rng.uniform(0, window), True),
    ]
    outs = []
    threads = []
    for i, (delay, in_write) in enumerate(plans):
        out = tmp / f"kill{i}" / "out"
        out.parent.mkdir()
        prepare(out)
        outs.append(out)
        threads.append(threading.Thread(target=_kill_run, args=(argv(out), out, delay, in_write)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outs


def _assert_survivable(
    out: Path,
    reference: dict[str, bytes],
    old: dict[str, bytes] | None,
    extra: AbstractSet[str] = frozenset(),
) -> None:
    """After a kill: the output is absent or complete; the rest of the folder is temp."""
    if out.exists():
        assert _tree(out) in (reference, old), f"{out} is neither the new nor the old output"
        if _tree(out) == reference:
            _check_complete(out, reference)
    stray = {p.name for p in out.parent.iterdir()} - {out.name} - extra
    assert all(name.startswith(f".{out.name}.netpol-") for name in stray), stray


def _old_output(out: Path, reference: dict[str, bytes]) -> dict[str, bytes]:
    """Put a complete but different earlier output at ``out`` (for a ``--force`` run)."""
    old = dict(reference)
    old["SUMMARY.md" if "SUMMARY.md" in old else "TIGHTEN.md"] += b"\nan earlier run\n"
    for rel, data in old.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return old


def _rerun_cleans_up(
    argv: Callable[[Path], list[str]],
    out: Path,
    reference: dict[str, bytes],
    old: dict[str, bytes] | None,
    full: bool,
) -> None:
    """The next run removes the leftovers first (restoring a swapped-out old output);
    a ``full`` rerun then writes the clean run's bytes."""
    remove_stale_temps(out)  # what every write calls first (check_writable)
    assert not _temps(out), "the next run must remove a killed run's temp entries"
    if old is not None:  # killed while replacing: the old output is back, or the new landed
        assert out.is_dir()
        assert _tree(out) in (old, reference)
    if not full:
        return
    assert main([*argv(out), "--force"]) == 0
    assert not list(out.parent.glob(".*netpol-*")), "temp entries left after a clean run"
    _check_complete(out, reference)


# ---------------------------------------------------------------------------
# recommend and tighten
# ---------------------------------------------------------------------------


def _kill_and_check(
    argv: Callable[[Path], list[str]],
    tmp: Path,
    seed: int,
    extra: Callable[[Path], set[str]] = lambda out: set(),
) -> None:
    reference_dir = tmp / "clean" / "out"
    reference_dir.parent.mkdir()
    window = _write_window(argv, reference_dir)
    reference = _tree(reference_dir)
    olds: dict[Path, dict[str, bytes] | None] = {}

    def prepare(out: Path) -> None:  # the last run replaces an older output with --force
        olds[out] = _old_output(out, reference) if out.parent.name == "kill2" else None

    outs = _killed_outputs(
        lambda out: [*argv(out), *(["--force"] if olds.get(out) else [])],
        tmp,
        window,
        prepare,
        seed,
    )
    for out in outs:
        _assert_survivable(out, reference, olds[out], extra(out))
    for out in outs:
        _rerun_cleans_up(argv, out, reference, olds[out], full=olds[out] is not None)


def test_recommend_killed_leaves_nothing_half_written(flows: Path, tmp_path: Path) -> None:
    def argv(out: Path) -> list[str]:
        return ["recommend", "--flows", str(flows), "--inventory", INVENTORY, "--out", str(out)]

    _kill_and_check(argv, tmp_path, SEED)


def test_tighten_killed_leaves_nothing_half_written(flows: Path, tmp_path: Path) -> None:
    def argv(out: Path) -> list[str]:
        return [
            "tighten",
            "--policies",
            str(BROADENED),
            "--inventory",
            INVENTORY,
            "--flows",
            str(flows),
            "--out",
            str(out),
            "--json",
            str(out) + ".json",
        ]

    def json_ok(out: Path) -> set[str]:  # the report lands after the tree, atomically too
        report = Path(str(out) + ".json")
        stray = {p.name for p in out.parent.glob(f".{report.name}.netpol-*")}
        if report.exists():
            assert report.read_bytes().endswith(b"}\n")
            stray.add(report.name)
        return stray

    _kill_and_check(argv, tmp_path, SEED + 1, json_ok)


def test_stale_temps_of_a_live_writer_are_left_alone(tmp_path: Path) -> None:
    """Only entries whose lock is free are removed: a concurrent writer keeps its own."""
    from recommender.policy_io.atomic import atomic_directory

    out = tmp_path / "out"
    with atomic_directory(out) as live:
        (live / "a.yaml").write_text("a: 1\n")
        dead = tmp_path / ".out.netpol-tmp-dead"
        dead.mkdir()
        assert remove_stale_temps(out) == [dead]
        assert live.is_dir()
    assert (out / "a.yaml").read_text() == "a: 1\n"
    assert not _temps(out)


def test_killed_between_the_two_renames_restores_the_old_output(tmp_path: Path) -> None:
    """``--force`` moves the old tree aside before renaming the new one in; a process
    killed in between leaves no output, and the next write puts the old one back."""
    out = tmp_path / "out"
    (tmp_path / ".out.netpol-old-x1").mkdir()
    (tmp_path / ".out.netpol-old-x1" / "x").mkdir()
    (tmp_path / ".out.netpol-old-x1" / "x" / "p.yaml").write_text("old: 1\n")
    (tmp_path / ".out.netpol-tmp-x2").mkdir()
    (tmp_path / ".out.netpol-tmp-x2" / "p.yaml").write_text("new: 1\n")
    removed = remove_stale_temps(out)
    assert [p.name for p in removed] == [".out.netpol-old-x1", ".out.netpol-tmp-x2"]
    assert (out / "p.yaml").read_text() == "old: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ---------------------------------------------------------------------------
# observe --store
# ---------------------------------------------------------------------------


class _Stream:
    """``observe --flows -`` fed steadily by a thread; stderr collected by another."""

    def __init__(self, store: Path, lines: list[bytes], spool: Path) -> None:
        env = {**os.environ, "TMPDIR": str(spool)}
        self.proc = _cli(
            "observe",
            "--flows",
            "-",
            "--store",
            str(store),
            "--checkpoint-interval",
            "1h",
            "--checkpoint-lines",
            "100",
            "--overlap-lines",
            "100000",
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.written = 0
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._feed, args=(lines,), daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode())

    def _feed(self, lines: list[bytes]) -> None:
        assert self.proc.stdin is not None
        try:
            for i in range(0, len(lines), 20):
                self.proc.stdin.write(b"".join(lines[i : i + 20]))
                self.proc.stdin.flush()
                self.written = min(i + 20, len(lines))
                time.sleep(0.02)
        except (BrokenPipeError, ValueError):
            pass  # killed

    def committed(self) -> list[int]:
        """Totals of the checkpoints the process reported."""
        return [
            int(m.group(1).replace(",", ""))
            for line in list(self.stderr)
            if (m := re.search(r"checkpoint \d+: .*\(([\d,]+) in all\)", line))
        ]


def _kill_stream(store: Path, lines: list[bytes], spool: Path, plan: tuple[str, float]) -> _Stream:
    """Kill at a seeded moment: after start-up, after the n-th reported checkpoint, or
    while the store's WAL exists (a commit or its checkpoint in progress)."""
    stream = _Stream(store, lines, spool)
    how, value = plan
    if how == "start":
        time.sleep(value)
    elif how == "after":
        _wait_until(lambda: len(stream.committed()) >= 2, stream.proc)
        time.sleep(value)
    else:
        wal = Path(str(store) + ".wal")
        # Bounded: the last checkpoint may be over before the WAL is seen.
        _wait_until(lambda: wal.exists() and len(stream.committed()) >= 1, stream.proc, 15.0)
        time.sleep(value)
    stream.proc.kill()
    stream.proc.wait(timeout=60)
    assert stream.proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        stream.proc.stdin.close()
    return stream


def _check_store(store: Path, stream: _Stream, lines: list[bytes], tmp: Path) -> None:
    """The store opens and holds exactly a checkpoint-prefix of the stream."""
    reported = stream.committed()
    if not store.exists():
        assert not reported, "a reported checkpoint was lost"
        return
    held = _held(store)
    assert held >= max(reported, default=0), "a reported checkpoint was lost"
    assert held <= stream.written
    assert held in reported or held > max(reported, default=0)  # committed, not yet reported
    if held:
        boundaries = sorted({b for b in reported if b < held} | {held})
        pd.testing.assert_frame_equal(
            read_store_buckets(str(store)), _stream_reference(lines, boundaries, tmp)
        )


def _stream_reference(lines: list[bytes], boundaries: list[int], tmp: Path) -> pd.DataFrame:
    """The store an uninterrupted stream holds after checkpoints at ``boundaries``."""
    ref = tmp / "reference.duckdb"
    appender = StreamAppender(str(ref), get_engine(), None, StreamOptions(overlap_lines=100000))
    try:
        start = 0
        for end in boundaries:
            appender.add_lines(lines[start:end])
            appender.checkpoint()
            start = end
    finally:
        appender.close()
    return read_store_buckets(str(ref))


def _held(store: Path) -> int:
    """Lines the store holds (0: no append committed, or killed before the schema did)."""
    if not store.exists():
        return 0
    try:
        with connect(str(store)) as con:
            row = con.execute("SELECT count(*) FROM appends").fetchone()
    except InputError as exc:
        if "an empty store" not in str(exc):
            raise
        return 0
    return read_store_stats(str(store)).lines if row and row[0] else 0


def test_observe_killed_keeps_a_checkpoint_prefix(
    lines: list[bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED + 2)
    plans = [
        ("start", rng.uniform(1.0, 8.0)),
        ("after", rng.uniform(0, 0.5)),
        ("wal", rng.uniform(0, 0.02)),
    ]
    runs: list[tuple[Path, Path, list[_Stream]]] = []
    threads = []
    for i, plan in enumerate(plans):
        run = tmp_path / f"kill{i}"
        spool = run / "tmp"
        spool.mkdir(parents=True)
        box: list[_Stream] = []
        runs.append((run / "s.duckdb", spool, box))
        threads.append(
            threading.Thread(
                target=lambda s=run / "s.duckdb", p=spool, b=box, pl=plan: b.append(
                    _kill_stream(s, lines, p, pl)
                )
            )
        )
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for store, _spool, (stream,) in runs:
        assert stream.proc.returncode == -9
        _check_store(store, stream, lines, store.parent)
    readable = [store for store, _, _ in runs if _held(store)]
    assert readable, "no kill landed after a checkpoint: the test exercised nothing"
    out = tmp_path / "rec"
    assert (
        main(
            ["recommend", "--store", str(readable[-1]), "--inventory", INVENTORY, "--out", str(out)]
        )
        == 0
    )
    assert (out / "kustomization.yaml").is_file()
    for store, spool, _ in runs:
        _next_run_continues(store, spool, lines, monkeypatch)


def _next_run_continues(
    store: Path, spool: Path, lines: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next observe removes the killed one's spool and appends to the same store."""
    monkeypatch.setattr("tempfile.tempdir", str(spool))
    before = _held(store)
    appender = StreamAppender(str(store), get_engine(), None, StreamOptions(overlap_lines=0))
    try:
        spools = [p.name for p in spool.glob("netpol-observe-*")]
        assert spools == [Path(appender._dir).name], "the killed run's spool is left"
        appender.add_lines(lines[:10])
        appender.checkpoint()
    finally:
        appender.close()
    assert not list(spool.glob("netpol-observe-*"))
    assert read_store_stats(str(store)).lines == before + 10


def test_first_append_killed_before_the_schema_committed(tmp_path: Path) -> None:
    """DuckDB creates the file on connect: a first ``observe`` killed before its schema
    committed leaves an empty database, which the next append takes as a new store."""
    store = tmp_path / "s.duckdb"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, os, sys; duckdb.connect(sys.argv[1]); os._exit(0)",
            str(store),
        ],
        check=True,
    )
    assert store.stat().st_size > 0
    assert (
        main(
            [
                "recommend",
                "--store",
                str(store),
                "--inventory",
                INVENTORY,
                "--out",
                str(tmp_path / "rec"),
            ]
        )
        == 2
    )
    flows = tmp_path / "f.jsonl"
    with gzip.open(SAMPLE / "flows-train.jsonl.gz", "rb") as fh:
        flows.write_bytes(b"".join(fh.read().splitlines(keepends=True)[:50]))
    assert main(["observe", "--flows", str(flows), "--store", str(store)]) == 0
    assert read_store_stats(str(store)).lines == 50
