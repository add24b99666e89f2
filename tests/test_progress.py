"""Progress lines: drawn (by rich) on a terminal, never when stderr is not one."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

from recommender.progress import Progress, stop_all
from tests.conftest import FIXTURES, ROOT

LINT = FIXTURES / "lint"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_are_drawn_on_a_terminal_and_cleared_when_done():
    out = _Tty()
    p = Progress("shadow: records", total=10, stream=out, interval=0.05)
    p.update(4, "batch 1")
    p.update(3)
    p.done()
    p.done()  # idempotent: commands call it from finally blocks too
    text = out.getvalue()
    assert "shadow: records" in text
    assert "7/10" in text
    assert "\x1b[?25h" in text  # the cursor is given back
    assert text.endswith("\x1b[2K")  # and the line erased: the output after it stays clean
    assert p.count == 7


def test_stop_all_clears_a_display_left_by_an_error():
    out = _Tty()
    p = Progress("tighten", total=4, stream=out)
    p.step("reading the evidence")
    stop_all()
    assert p._bar is None
    assert "reading the evidence" in out.getvalue()


def test_nothing_is_drawn_and_rich_not_imported_without_a_terminal():
    code = (
        "import io, sys\n"
        "from recommender.progress import Progress\n"
        "p = Progress('x', total=3, stream=io.StringIO()); p.update(2); p.step('s'); p.done()\n"
        "q = Progress('y'); q.update(1); q.done()\n"  # stderr is a pipe here
        "print(p.count, q.count, 'rich' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["3", "1", "False"]
    assert out.stderr == ""


def _lint(out: Path, stderr_tty: bool) -> tuple[int, bytes, bytes]:
    """``netpol lint`` with stderr on a pseudo-terminal or a pipe: (rc, stdout, stderr)."""
    args = [
        sys.executable,
        str(ROOT / "cli.py"),
        "lint",
        "--inventory",
        str(LINT / "inventory.yaml"),
    ]
    args += ["--json", str(out), str(LINT)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    if not stderr_tty:
        done = subprocess.run(args, capture_output=True, env=env)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=follower, env=env)
    os.close(follower)
    err = b""
    while True:  # drain the terminal while the command runs (it would block on a full pty)
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the other end closed (Linux reports EIO)
                break
            if not chunk:
                break
            err += chunk
        elif proc.poll() is not None:
            break
    os.close(leader)
    stdout = proc.stdout.read() if proc.stdout else b""
    return proc.wait(), stdout, err


def test_a_command_draws_on_a_terminal_and_not_in_a_pipe(tmp_path):
    rc_tty, out_tty, err_tty = _lint(tmp_path / "tty.json", stderr_tty=True)
    rc_pipe, out_pipe, err_pipe = _lint(tmp_path / "pipe.json", stderr_tty=False)
    assert rc_tty == rc_pipe
    assert b"lint" in err_tty
    assert b"\x1b[" in err_tty  # drawn (and cleared) with terminal escapes
    assert b"\x1b[" not in err_pipe
    assert b"checking" not in err_pipe  # no stage names in a log
    assert out_tty == out_pipe  # stdout is the same, not redirected into the terminal
    assert (tmp_path / "tty.json").read_bytes() == (tmp_path / "pipe.json").read_bytes()
