"""The command line's contract: exit codes and one-line errors."""

from __future__ import annotations

import subprocess
import sys

from recommender.cli.parser import main
from tests.conftest import ROOT


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_command_is_one_line_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: netpol: ")


def test_python_cli_py_runs_the_same_main():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "--version"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stdout.startswith("netpol ")
