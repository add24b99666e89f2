"""The package layering holds (issue 16): the import-linter contracts in pyproject.toml.

``cli`` -> stages -> ``policy_io`` -> ``semantics`` -> plain data, no circles. The
contracts are run on the real tree, then on a copy with one bad import added, to
show that a reverse import or a circle would fail this test (and ``make lint``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c for c in CONFIG["contracts"]}
LINT = (
    "import sys\nfrom importlinter.cli import lint_imports\n"
    "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter on the package under ``root`` (its own copy first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"}  # no wrapped lines
    return subprocess.run(
        [sys.executable, "-c", LINT],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _layer_names(contract: dict[str, object]) -> set[str]:
    layers = contract["layers"]
    assert isinstance(layers, list)
    return {name.strip() for layer in layers for name in layer.split("|")}


def test_the_contracts_hold_on_the_tree():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in result.stdout


def test_every_top_level_package_and_module_has_a_layer():
    # A new package must be placed in the layering, or the contract would not cover it.
    pkg = ROOT / "recommender"
    names = {p.name for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    names |= {p.stem for p in pkg.glob("*.py")} - {"__init__", "__main__"}
    assert CONTRACTS["stages"]["type"] == "layers"
    assert _layer_names(CONTRACTS["stages"]) == {f"recommender.{n}" for n in names}


def test_circles_are_checked_in_every_package():
    assert CONTRACTS["acyclic"]["type"] == "acyclic_siblings"
    assert CONTRACTS["acyclic"]["ancestors"] == ["recommender"]


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # the exact engine importing the command line: a reverse arrow
        (
            "semantics/engine.py",
            "from recommender.cli import parser",
            "recommender.semantics is not allowed to import recommender.cli",
        ),
        # plain data importing a stage
        (
            "model.py",
            "import recommender.recommend.pipeline",
            "recommender.model is not allowed to import recommender.recommend",
        ),
        # the old circle: the engine interface importing the store that imports it
        (
            "observe/engines/base.py",
            "import recommender.observe.store",
            "recommender.observe.engines.base is not allowed to import recommender.observe.store",
        ),
        # a circle between two modules of a package no layers contract lists
        (
            "tighten/text.py",
            "from recommender.tighten import report",
            "No cycles are allowed in recommender.tighten",
        ),
    ],
)
def test_an_added_bad_import_breaks_a_contract(tmp_path, module, line, message):
    shutil.copytree(
        ROOT / "recommender",
        tmp_path / "recommender",
        ignore=shutil.ignore_patterns("__pycache__", "topologies"),
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "recommender" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    result = _lint(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout


def test_the_core_imports_no_stage_and_no_heavy_dependency():
    # semantics and the plain data load without kubernetes, DuckDB, pandas or YAML,
    # and without any stage package (flows, inventory, policy_io, ...).
    code = (
        "import sys\nimport recommender.semantics.flow_endpoints, "
        "recommender.semantics.reachability, recommender.semantics.validate\n"
        "print(' '.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    loaded = set(out.stdout.split())
    assert "recommender.semantics.engine" in loaded
    assert not loaded & {"kubernetes", "duckdb", "pandas", "yaml", "pyarrow", "sklearn"}
    ours = {m.split(".")[1] for m in loaded if m.startswith("recommender.")}
    assert ours == {"labels", "model", "semantics", "vocabulary"}
