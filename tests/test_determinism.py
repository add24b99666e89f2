"""Every JSON (and text) output is byte-identical across runs with different hash seeds.

Python randomizes ``str`` hashes per process (``PYTHONHASHSEED``), so a set or a dict
built from one iterates in a different order in each process. An output that depends
on such an order differs between two runs on the same input: a determinism bug that a
test running in one process can never see. So each seed runs every command in its own
interpreter, on the same inputs, with the same relative output names, and the trees
are compared byte for byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: One ``main(argv)`` per command that writes a report; paths under ``{d}`` are the
#: simulation's, the others are relative to the run's own directory.
COMMANDS = [
    ["observations", "--flows", "{d}/flows-train.jsonl.gz", "--inventory", "{d}/inventory.json",
     "--json", "observations.json"],
    ["recommend", "--flows", "{d}/flows-train.jsonl.gz", "--inventory", "{d}/inventory.json",
     "--out", "policies", "--json", "recommend.json"],
    ["lint", "policies", "--inventory", "{d}/inventory.json", "--json", "lint.json",
     "--sarif", "lint.sarif", "--fail-on", "never"],
    ["shadow", "--policies", "policies", "--inventory", "{d}/inventory-fresh.json",
     "--flows", "{d}/flows-fresh.jsonl.gz", "--json", "shadow.json", "--report", "shadow.md",
     "--verdicts", "verdicts.jsonl"],
    ["tighten", "--policies", "policies", "--inventory", "{d}/inventory.json",
     "--flows", "{d}/flows-train.jsonl.gz", "--out", "tightened", "--json", "tighten.json"],
    ["diff", "policies", "tightened", "--inventory", "{d}/inventory.json",
     "--flows", "{d}/flows-fresh.jsonl.gz", "--json", "diff.json", "--markdown", "diff.md"],
    ["score", "--policies", "policies", "--truth", "{d}/truth.json",
     "--flows", "{d}/flows-fresh.jsonl.gz", "--inventory", "{d}/inventory-fresh.json",
     "--json", "score.json"],
]  # fmt: skip

DRIVER = """
import json, sys
from recommender.cli.parser import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code not in (0, 3):
        sys.exit(f"{argv[0]} exited {code}")
"""


def _run_all(sim: Path, work: Path, seed: str) -> dict[str, bytes]:
    import json

    work.mkdir()
    argvs = [[a.replace("{d}", str(sim)) for a in argv] for argv in COMMANDS]
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(argvs)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        str(p.relative_to(work)): p.read_bytes() for p in sorted(work.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_every_output_is_byte_identical_across_hash_seeds(small_sim: Path, tmp_path: Path) -> None:
    first = _run_all(small_sim, tmp_path / "seed-1", "1")
    second = _run_all(small_sim, tmp_path / "seed-2", "2")
    # every command wrote what it was asked for (the comparison is not of nothing)
    for name in ("observations.json", "recommend.json", "lint.json", "lint.sarif", "shadow.json",
                 "verdicts.jsonl", "tighten.json", "diff.json", "score.json"):  # fmt: skip
        assert first.get(name), name
    assert any(k.startswith("policies/") and k.endswith(".yaml") for k in first)
    assert sorted(first) == sorted(second)
    differ = [name for name in first if first[name] != second[name]]
    assert differ == []
