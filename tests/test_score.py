"""The scorer: false-deny, block rate, over-permissiveness and compactness against truth."""

from __future__ import annotations

import json

import pytest

from recommender.cli.parser import main
from recommender.evaluate.measure import format_table, score


@pytest.fixture(scope="module")
def paths(small_sim):
    return {
        "truth": str(small_sim / "truth.json"),
        "flows": str(small_sim / "flows-fresh.jsonl.gz"),
        "inventory": [str(small_sim / "inventory-fresh.json")],
    }


@pytest.fixture(scope="module")
def deny_all_everywhere(tmp_path_factory, small_sim):
    truth = json.loads((small_sim / "truth.json").read_text())
    namespaces = sorted({w["namespace"] for w in truth["workloads"]})
    docs = [
        f"apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
        f"  name: deny-all\n  namespace: {ns}\nspec:\n  podSelector: {{}}\n"
        f"  policyTypes: [Ingress, Egress]\n"
        for ns in namespaces
    ]
    path = tmp_path_factory.mktemp("deny") / "deny.yaml"
    path.write_text("---\n".join(docs))
    return path


def test_no_policies_deny_nothing_and_block_nothing(paths, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing\n")
    result = score([str(empty)], paths["truth"], paths["flows"], paths["inventory"])
    fd, block = result["false_deny"], result["block"]
    assert fd["connections"]["denied"] == 0
    assert fd["connections"]["total"] > 0
    assert fd["edges_trained"]["denied"] == 0
    assert fd["edges_trained"]["total"] > 0
    assert block["total"] > 0
    assert block["denied"] == 0
    over = result["over_permissiveness"]
    # an open cluster allows every declared port between every pair in scope
    assert over["unobserved_allowed_triples"] > over["observed_triples"] > 0
    assert result["compactness"]["policies"] == 0


def test_deny_all_blocks_every_attack_and_breaks_the_app(paths, deny_all_everywhere):
    result = score([str(deny_all_everywhere)], paths["truth"], paths["flows"], paths["inventory"])
    block = result["block"]
    assert block["total"] > 0
    assert block["denied"] == block["total"]
    assert set(block["by_kind"]) <= {"scan", "lateral", "exfiltration", "unattributed"}
    fd = result["false_deny"]
    assert fd["edges_trained"]["rate"] > 0.5
    # only the exemptions (own node, self) remain allowed: no pod-to-pod triple
    assert result["over_permissiveness"]["unobserved_allowed_triples"] == 0
    table = format_table(result)
    assert "block rate, illegitimate" in table
    assert "100.00%" in table


def test_cli_writes_json_and_refuses_overwrite(paths, deny_all_everywhere, tmp_path, capsys):
    out = tmp_path / "score.json"
    argv = [
        "score",
        "--policies",
        str(deny_all_everywhere),
        "--truth",
        paths["truth"],
        "--flows",
        paths["flows"],
        "--inventory",
        *paths["inventory"],
        "--json",
        str(out),
    ]
    assert main(argv) == 0
    assert json.loads(out.read_text())["block"]["rate"] == 1.0
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err


def test_not_a_truth_file_is_exit_2(paths, tmp_path, capsys):
    bogus = tmp_path / "t.json"
    bogus.write_text("[]")
    argv = [
        "score",
        "--policies",
        str(bogus),
        "--truth",
        str(bogus),
        "--flows",
        paths["flows"],
        "--inventory",
        *paths["inventory"],
    ]
    assert main(argv) == 2
    assert "truth" in capsys.readouterr().err
