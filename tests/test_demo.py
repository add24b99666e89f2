"""`netpol demo` runs recommend, shadow and score end to end."""

from __future__ import annotations

import json

from recommender.cli.parser import main


def test_demo_end_to_end_on_small_simulation(small_sim, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(small_sim), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for step in ("1/4", "2/4", "3/4", "4/4", "Outputs:"):
        assert step in printed
    score = json.loads((out / "score.json").read_text())
    # the recommendation never breaks a trained edge and never lets an attack through
    assert score["false_deny"]["edges_trained"]["denied"] == 0
    assert score["block"]["rate"] == 1.0
    assert score["learned_attacks"]["allowed"] == 0
    assert (out / "policies" / "SUMMARY.md").is_file()
    assert (out / "verdicts.jsonl").stat().st_size > 0


def test_demo_refuses_existing_output_without_force(small_sim, tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    assert main(["demo", "--data", str(small_sim), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_demo_names_missing_data(tmp_path, capsys):
    assert main(["demo", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err
    assert "--simulate" in err
