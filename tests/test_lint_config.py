"""`make lint` and the pre-commit hooks run the same checks (issue 19)."""

from __future__ import annotations

import re

import yaml

from tests.conftest import ROOT


def _make_lint_tools() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    recipe = text.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    lines = [ln.strip() for ln in recipe.splitlines()[1:] if ln.startswith("\t")]
    return {" ".join(re.sub(r"^\$\(BIN\)/", "", ln).split()[:2]) for ln in lines}


def _hook_tools() -> set[str]:
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    tools = set()
    for hook in hooks:
        for command in re.sub(r"^bash -c '(.*)'$", r"\1", hook["entry"]).split("&&"):
            tools.add(" ".join(command.split()[:2]))
    return tools


def test_make_lint_checks_formatting_types_of_tests_and_layering() -> None:
    tools = _make_lint_tools()
    assert {"ruff check", "ruff format", "mypy", "mypy tests", "lint-imports"} <= tools


def test_pre_commit_runs_what_make_lint_runs() -> None:
    # mypy and lint-imports take no file names: the same words on both sides
    assert _hook_tools() == _make_lint_tools()
