"""shadow, diff, tighten and lint on policy files the API server refuses: exit code, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.cli.parser import main
from tests.conftest import FIXTURES

INVENTORY = FIXTURES / "lint" / "inventory.yaml"
GOOD = FIXTURES / "lint" / "good.yaml"
FLOWS = FIXTURES / "hubble" / "exporter-mixed.ndjson"
HEAD = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata: {name: web, namespace: shop}\n"
)

#: name -> (file text, line, message after "document 1: " or after the line)
CASES = {
    "typo-field": (
        HEAD + "spec:\n  podSelector: {}\n  policyTypes: [Ingress]\n  ingres:\n  - {}\n",
        7,
        'document 1: spec.ingres: unknown field "ingres" (did you mean "ingress"?) [NP118]',
    ),
    "duplicate-key": (
        HEAD + "spec:\n  podSelector: {}\n  ingress:\n  - from: [{podSelector: {}}]\n"
        "  ingress:\n  - {}\n",
        8,
        "invalid YAML: duplicate key 'ingress' (first at line 6)",
    ),
    "api-version-mapping": (
        "apiVersion: {group: networking.k8s.io}\nkind: NetworkPolicy\n"
        "metadata: {name: web, namespace: shop}\nspec: {podSelector: {}}\n",
        1,
        "document 1: apiVersion: must be a string, not an object",
    ),
    "sexagesimal-port": (
        HEAD + "spec:\n  podSelector: {}\n  ingress:\n  - ports:\n    - port: 1:20\n",
        8,
        "document 1: spec.ingress[0].ports[0].port: must be an integer or a port name, not "
        "`1:20` (a YAML 1.1 base-60 number; Kubernetes reads it as a string; PyYAML reads 80; "
        "write it in decimal, or quote it) [NP100]",
    ),
}
IDS = list(CASES)


def _argv(command: str, bad: Path, tmp_path: Path) -> list[str]:
    inventory = ["--inventory", str(INVENTORY)]
    return {
        "shadow": ["shadow", "--policies", str(bad), *inventory, "--flows", str(FLOWS)],
        "diff-old": ["diff", str(bad), str(GOOD), *inventory],
        "diff-new": ["diff", str(GOOD), str(bad), *inventory],
        "tighten": [
            "tighten",
            "--policies",
            str(bad),
            *inventory,
            "--flows",
            str(FLOWS),
            "--out",
            str(tmp_path / "out"),
        ],
    }[command]


@pytest.mark.parametrize("case", IDS)
@pytest.mark.parametrize("command", ["shadow", "diff-old", "diff-new", "tighten"])
def test_refused_with_one_located_line(tmp_path, capsys, command, case):
    text, line, message = CASES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(_argv(command, bad, tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}:{line}: {message}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["duplicate-key", "api-version-mapping"])
def test_lint_refuses_what_it_cannot_judge(tmp_path, capsys, case):
    text, line, message = CASES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["lint", str(bad), "--inventory", str(INVENTORY)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"error: {bad}:{line}: {message}"]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("case", "finding"),
    [
        ("typo-field", 'error NP118 [shop/web] unknown field "ingres" (did you mean "ingress"?)'),
        (
            "sexagesimal-port",
            "error NP100 [shop/web] must be an integer or a port name, not `1:20`",
        ),
    ],
)
def test_lint_reports_a_finding_with_line_and_fails(tmp_path, capsys, case, finding):
    text, line, _ = CASES[case]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert main(["lint", str(bad), "--inventory", str(INVENTORY), "--namespace", "shop"]) == 3
    captured = capsys.readouterr()
    hits = [x for x in captured.out.splitlines() if x.startswith(f"{bad}:{line}: error NP1")]
    assert len(hits) == 1
    assert hits[0].startswith(f"{bad}:{line}: {finding}")
    assert captured.err.strip().splitlines()[-1].startswith("error: lint: 1 errors")
