"""Start-up stays light: building the parser and ``--help`` import no heavy library.

``netpol --help`` and ``netpol CMD --help`` must be fast (issue 12): command
modules import pandas, duckdb, scikit-learn... inside their run functions.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

#: Libraries that cost hundreds of milliseconds to import.
HEAVY = (
    "pandas",
    "numpy",
    "sklearn",
    "pyarrow",
    "matplotlib",
    "kubernetes",
    "duckdb",
    "pyspark",
    "rich",
    "prometheus_client",
)

_PROBE = """
import contextlib, io, json, sys
from recommender.cli.parser import build_parser, discover_commands, main
names = [c.name for c in discover_commands()]
build_parser()  # every command's options
for argv in [["--help"]] + [[name, "--help"] for name in names]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit:
            pass
heavy = sorted(m for m in {heavy} if m in sys.modules)
print(json.dumps({{"names": names, "heavy": heavy}}))
"""


def _probe() -> dict[str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, list[str]] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_help_of_every_command_imports_no_heavy_library() -> None:
    result = _probe()
    assert "observations" in result["names"]
    assert "recommend" in result["names"]
    assert result["heavy"] == []


def test_import_cli_is_light() -> None:
    code = f"import sys, recommender.cli; print([m for m in {HEAVY} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == "[]"


def test_command_help_lists_its_options() -> None:
    out = subprocess.run(
        [sys.executable, "cli.py", "observations", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0
    assert "--flows" in out.stdout
    assert "--engine" in out.stdout
