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


def test_demo_outputs_name_out_not_the_temp_directory(small_sim, tmp_path, capsys):
    """The steps write into a temp directory renamed to --out at the end; nothing they
    wrote or printed may name the temp directory."""
    out = tmp_path / "demo"
    assert main(["demo", "--data", str(small_sim), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "netpol-tmp" not in printed
    assert f"{out}/policies" in printed
    texts = [p.read_text() for p in out.rglob("*") if p.is_file()]
    assert not [t for t in texts if "netpol-tmp" in t]
    assert any(str(out) in t for t in texts)  # reports do record their paths
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no temp left beside


def test_a_failed_demo_leaves_the_previous_one_in_place(small_sim, tmp_path, capsys):
    """``--force`` replaces --out only once every step has succeeded (atomic, like every
    other output): a step failing halfway leaves the previous demo untouched."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("previous demo\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in small_sim.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "truth.json").write_text("{not json")  # the last step (score) fails
    code = main(["demo", "--data", str(broken), "--out", str(out), "--force"])
    assert code == 2
    assert "truth.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "demo"]
