"""``netpol observe``: file appends, stdin streams with checkpoints, crashes, signals, errors."""

from __future__ import annotations

import gzip
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from recommender.cli.parser import main
from recommender.observe.factory import get_engine
from recommender.observe.store import read_store_buckets, read_store_observations, read_store_stats
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample" / "flows-train.jsonl.gz"


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """The first 300 lines of the bundled sample (damaged lines 159 and 237)."""
    with gzip.open(SAMPLE, "rb") as fh:
        return fh.read().splitlines(keepends=True)[:300]


@pytest.fixture
def flows(lines: list[bytes], tmp_path: Path) -> Path:
    path = tmp_path / "flows.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def _expected(lines: list[bytes], tmp_path: Path) -> pd.DataFrame:
    """One aggregation of ``lines``, references renamed as the stream names them (``-:n``)."""
    path = tmp_path / "expected.jsonl"
    path.write_bytes(b"".join(lines))
    obs = get_engine().aggregate([str(path)], bucket="1h").observations
    obs["refs"] = [[r.replace(f"{path}:", "-:") for r in refs] for refs in obs["refs"]]
    return obs


# -- files ----------------------------------------------------------------------


def test_observe_files_then_status(
    flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.duckdb"
    assert main(["observe", "--flows", str(flows), "--store", str(store), "--status"]) == 0
    out = capsys.readouterr().out
    assert "appended 1 file(s)" in out
    assert re.search(r"observations: \d+ rows in 1 hourly buckets", out)
    assert "300 lines, 2 rejected" in out
    expected = get_engine().aggregate([str(flows)], bucket="1h").observations
    pd.testing.assert_frame_equal(read_store_buckets(str(store)), expected)


def test_same_file_twice_is_refused_unless_again(
    flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.duckdb")
    assert main(["observe", "--flows", str(flows), "--store", store]) == 0
    once = read_store_observations(store)["connections"].sum()
    capsys.readouterr()
    assert main(["observe", "--flows", str(flows), "--store", store]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flows}: already in the store (append 1)")
    assert len(err.strip().splitlines()) == 1
    assert read_store_observations(store)["connections"].sum() == once
    assert main(["observe", "--flows", str(flows), "--store", store, "--again"]) == 0
    assert read_store_observations(store)["connections"].sum() == 2 * once


def test_retain_from_the_command_line(
    lines: list[bytes], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = str(tmp_path / "s.duckdb")
    with gzip.open(SAMPLE, "rb") as fh:
        two_hours = fh.read().splitlines(keepends=True)[:2999]
    flows = tmp_path / "two-hours.jsonl"
    flows.write_bytes(b"".join(two_hours))
    assert main(["observe", "--flows", str(flows), "--store", store, "--retain", "30m"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"pruned \d+ rows in 1 buckets that ended before 2026-11-02T01:", out)
    assert read_store_buckets(store)["bucket"].dt.hour.unique().tolist() == [1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flows", "{tmp}/missing.jsonl"], "error: {tmp}/missing.jsonl: no such file"),
        ([], "error: nothing to do"),
        (["--status"], "error: {tmp}/s.duckdb: no such store"),
        (["--flows", "{flows}", "--checkpoint-interval", "soon"], "error: bad duration 'soon'"),
        (["--retain", "forever"], "error: bad duration 'forever'"),
        (["--flows", "{flows}", "--strict"], "error: {flows}:159: not valid JSON"),
    ],
    ids=["missing-file", "nothing", "missing-store", "bad-interval", "bad-retain", "strict"],
)
def test_bad_input_is_one_line_exit_2(
    argv: list[str], message: str, flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill = {"tmp": str(tmp_path), "flows": str(flows)}
    argv = [a.format(**fill) for a in argv]
    assert main(["observe", *argv, "--store", str(tmp_path / "s.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(**fill))
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.duckdb").exists()  # nothing half-written


def test_corrupt_store_is_one_line_exit_2(
    flows: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.duckdb"
    store.write_bytes(b"\x00garbage" * 4096)
    assert main(["observe", "--flows", str(flows), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {store}: not a readable netpol store")
    assert len(err.strip().splitlines()) == 1


# -- stdin streams ----------------------------------------------------------------


class Observer:
    """``netpol observe --flows -`` in a subprocess, its stderr read by a thread."""

    def __init__(self, store: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "cli.py"),
                "observe",
                "--flows",
                "-",
                "--store",
                str(store),
                "--checkpoint-interval",
                "1h",
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode())
            self.lines.put(raw.decode())

    def write_slowly(self, lines: list[bytes], piece: int = 10) -> None:
        assert self.proc.stdin is not None
        for i in range(0, len(lines), piece):
            self.proc.stdin.write(b"".join(lines[i : i + piece]))
            self.proc.stdin.flush()
            time.sleep(0.02)

    def wait_for(self, pattern: str, timeout: float = 90.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, f"observe exited: {''.join(self.stderr)}"
                continue
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no {pattern!r} on stderr: {''.join(self.stderr)}")


def test_kill_9_keeps_everything_up_to_the_last_checkpoint(
    lines: list[bytes], tmp_path: Path
) -> None:
    store = tmp_path / "s.duckdb"
    obs = Observer(store, "--checkpoint-lines", "70", "--overlap-lines", "1000")
    try:
        obs.write_slowly(lines[:70])
        obs.wait_for(r"checkpoint 1: \+70 lines \(70 in all\)")
        obs.write_slowly(lines[70:140])
        obs.wait_for(r"checkpoint 2: \+70 lines \(140 in all\)")
        obs.write_slowly(lines[140:170])  # fewer than 70: spooled, never committed
        time.sleep(0.5)
    finally:
        obs.proc.send_signal(signal.SIGKILL)
        obs.proc.wait(timeout=30)
    assert obs.proc.returncode == -signal.SIGKILL
    pd.testing.assert_frame_equal(read_store_buckets(str(store)), _expected(lines[:140], tmp_path))
    assert read_store_stats(str(store)).lines == 140
    # not corrupt: it reports, and takes the next append
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "observe",
            "--flows",
            "-",
            "--store",
            str(store),
            "--status",
        ],
        input=b"".join(lines[140:]),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"appends: 2" in proc.stdout
    assert read_store_stats(str(store)).lines == len(lines)


def test_sigterm_commits_what_was_read_and_exits_0(lines: list[bytes], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    obs = Observer(store, "--checkpoint-lines", "100000")
    obs.wait_for("reading stdin")  # the signal handlers are in place
    obs.write_slowly(lines[:50])
    time.sleep(1.0)
    obs.proc.send_signal(signal.SIGTERM)
    obs.proc.wait(timeout=90)  # stdin stays open: the signal alone ends the run
    assert obs.proc.stdout is not None
    out = obs.proc.stdout.read()
    assert obs.proc.returncode == 0, "".join(obs.stderr)
    assert b"stdin: 50 lines in 1 checkpoint(s)" in out
    assert b"stopped by a signal" in out
    pd.testing.assert_frame_equal(read_store_buckets(str(store)), _expected(lines[:50], tmp_path))


def test_eof_with_a_partial_last_line(lines: list[bytes], tmp_path: Path) -> None:
    store = tmp_path / "s.duckdb"
    data = b"".join(lines[:40]) + lines[40][:25]  # cut mid-record, no newline
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "observe", "--flows", "-", "--store", str(store)],
        input=data,
        capture_output=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert b"stdin: 41 lines in 1 checkpoint(s)" in proc.stdout
    stats = read_store_stats(str(store))
    assert stats.lines == 41
    assert stats.rejects == {"not valid JSON": 1}
    assert stats.reject_samples == ("-:41: not valid JSON",)
