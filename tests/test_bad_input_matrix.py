"""Every command on every kind of bad input: exit code 2 and one ``error:`` line.

Runs the real CLI in-process (``recommender.cli.parser.main``); one subprocess smoke test
checks the same through ``cli.py``. A gate that passes on no data is worse than no
gate, so ``shadow --fail-on-deny`` and ``diff --fail-on-change`` are in the matrix.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.cli.parser import main
from tests.conftest import FIXTURES, ROOT, SAMPLES

INVENTORY = FIXTURES / "lint" / "inventory.yaml"
POLICY = FIXTURES / "lint" / "good.yaml"
HUBBLE = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
LOST = (
    '{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":5,"cpu":1},'
    '"node_name":"node-1","time":"2026-01-01T00:00:00Z"}\n'
)

#: Files of a format netpol reads whose every record is rejected: the sample file, how
#: it is damaged, and the format the error must name. (AWS, Calico, Antrea and Inspektor
#: Gadget were foreign formats here until their readers landed: tests/test_formats_*.py.)
#: The Antrea samples get an ingress rule action no Antrea version writes (9): a counted
#: reject of every record; the Inspektor Gadget kubenameresolver fragment holds no
#: endpoints, as it is.
ANTREA = SAMPLES / "antrea"
ALL_REJECTED = {
    "antrea-json": (
        ANTREA / "antctl-get-flowrecords-doc-example.json",
        "Antrea flow records (JSON)",
    ),
    "antrea-csv": (ANTREA / "flowlogger-csv-test-fixture.csv", "an Antrea flow-aggregator CSV"),
    "gadget": (
        SAMPLES / "inspektor-gadget" / "kubenameresolver-doc-fragment.json",
        "Inspektor Gadget output",
    ),
}
KINDS = ("empty", "reply-only", "lost-events-only", "yaml", "truncated-gz", "binary", *ALL_REJECTED)
COMMANDS = ("observations", "recommend", "shadow", "observe", "tighten", "diff", "lint", "convert")


def _replies() -> str:
    lines = []
    for line in HUBBLE.read_text().splitlines():
        doc = json.loads(line)
        doc["flow"]["is_reply"] = True
        lines.append(json.dumps(doc))
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {
        "empty": d / "empty.json",
        "reply-only": d / "replies.json",
        "lost-events-only": d / "lost.json",
        "yaml": d / "inventory.yaml",
        "truncated-gz": d / "flows.json.gz",
        "binary": d / "flows.bin",
    }
    files["empty"].write_text("")
    files["reply-only"].write_text(_replies())
    files["lost-events-only"].write_text(LOST * 2)
    shutil.copy(INVENTORY, files["yaml"])
    files["truncated-gz"].write_bytes(gzip.compress(HUBBLE.read_bytes())[:40])
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["antrea-json"] = d / "antrea.json"
    files["antrea-json"].write_text(_unknown_action_json(ALL_REJECTED["antrea-json"][0]))
    files["antrea-csv"] = d / "antrea.csv"
    files["antrea-csv"].write_text(_unknown_action_csv(ALL_REJECTED["antrea-csv"][0]))
    files["gadget"] = ALL_REJECTED["gadget"][0]
    return files


def _unknown_action_json(sample: Path) -> str:
    records = json.loads(sample.read_text())
    for record in records:
        record["ingressNetworkPolicyRuleAction"] = 9
    return json.dumps(records, indent=2) + "\n"


def _unknown_action_csv(sample: Path) -> str:
    ingress, egress = 20, 25  # 0-based columns of the two rule actions (flowlogger order)
    lines = []
    for line in sample.read_text().splitlines():
        fields = line.split(",")
        fields[ingress] = fields[egress] = "9"
        lines.append(",".join(fields))
    return "\n".join(lines) + "\n"


def _argv(command: str, bad: str, out: Path) -> list[str]:
    inv, pol = str(INVENTORY), str(POLICY)
    return {
        "observations": ["observations", "--flows", bad, "--inventory", inv],
        "recommend": ["recommend", "--flows", bad, "--inventory", inv, "--out", str(out / "r")],
        "shadow": [
            "shadow",
            "--policies",
            pol,
            "--inventory",
            inv,
            "--flows",
            bad,
            "--fail-on-deny",
        ],
        "observe": [
            "observe",
            "--flows",
            bad,
            "--inventory",
            inv,
            "--store",
            str(out / "s.duckdb"),
        ],
        "tighten": [
            "tighten",
            "--policies",
            pol,
            "--inventory",
            inv,
            "--flows",
            bad,
            "--out",
            str(out / "t"),
        ],
        "diff": ["diff", pol, pol, "--inventory", inv, "--flows", bad, "--fail-on-change"],
        "lint": ["lint", bad, "--inventory", inv],  # lint reads no flows: the bad file is a policy
        "convert": ["convert", "--flows", bad, "--to", "parquet", "--out", str(out / "x.parquet")],
    }[command]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_is_exit_2_and_one_error_line(command, kind, bad_inputs, tmp_path, capsys):
    bad = str(bad_inputs[kind])
    code = main(_argv(command, bad, tmp_path))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    errors = [line for line in err if line.startswith("error:")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert err[-1] == errors[0]
    assert not any("Traceback" in line or "internal error" in line for line in err)
    assert bad in errors[0]
    if kind in ALL_REJECTED and command != "lint":
        assert f"looks like {ALL_REJECTED[kind][1]}" in errors[0]
        assert "rejected" in errors[0]
    assert not [p for p in tmp_path.iterdir() if p.name in ("r", "t", "x.parquet")]


def test_shadow_gate_refuses_an_empty_file_through_cli_py(bad_inputs):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "shadow",
            "--policies",
            str(POLICY),
            "--inventory",
            str(INVENTORY),
            "--flows",
            str(bad_inputs["empty"]),
            "--fail-on-deny",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad_inputs['empty']}: no usable flow records (the input is empty): nothing "
        "was judged, so the --fail-on-deny gate cannot pass"
    ]


def _antrea_and_one_hubble_syn(tmp_path: Path) -> tuple[Path, int]:
    """The Antrea CSV fixture followed by one Hubble connection request, and its line count."""
    mixed = tmp_path / "mixed.log"
    foreign = (ANTREA / "flowlogger-csv-test-fixture.csv").read_text()
    tcp = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-400-tcp-flows.json"
    syn = next(
        line
        for line in tcp.read_text().splitlines()
        if '"SYN":true' in line and '"ACK"' not in line
    )  # one connection request
    mixed.write_text(foreign + syn + "\n")
    return mixed, len(foreign.splitlines()) + 1


def test_mostly_rejected_input_warns_with_the_format(tmp_path, capsys):
    mixed, n = _antrea_and_one_hubble_syn(tmp_path)
    # Forced to read Antrea lines as Hubble: they are rejected, and the warning says what
    # the file looks like.
    assert main(["observations", "--flows", str(mixed), "--format", "hubble"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {n - 1} of {n} input lines were rejected" in err
    assert "looks like an Antrea flow-aggregator CSV" in err


def test_a_file_is_read_in_the_format_of_its_head(tmp_path, capsys):
    mixed, n = _antrea_and_one_hubble_syn(tmp_path)
    # Detected as Antrea CSV: its records are read, the one Hubble line is a counted reject.
    assert main(["observations", "--flows", str(mixed)]) == 0
    captured = capsys.readouterr()
    assert f"lines read: {n}; flow records: 2; connections: 1" in captured.out
    assert "antrea-test/pod/perftest-a {}  antrea-test-b/pod/perftest-b {}  5201/TCP" in (
        captured.out
    )
    assert "rejected lines: 1 (invalid flowStartSeconds: " in captured.out
    assert f"{mixed}:{n}: invalid flowStartSeconds" in captured.out
    assert "lines were rejected" not in captured.err


def test_a_policy_file_without_policies_is_refused_as_shadow_candidate(bad_inputs, capsys):
    code = main(
        [
            "shadow",
            "--policies",
            str(bad_inputs["yaml"]),
            "--inventory",
            str(INVENTORY),
            "--flows",
            str(HUBBLE),
            "--fail-on-deny",
        ]
    )
    assert code == 2
    assert "no NetworkPolicy found in the candidate policies" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["lint", "diff", "shadow"])
def test_policies_outside_every_inventory_namespace_hint_at_default_namespace(
    command, tmp_path, capsys
):
    policy = tmp_path / "p.yaml"  # names no namespace: read as `default`, not in the inventory
    policy.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: deny}\nspec: {podSelector: {}, policyTypes: [Ingress]}\n"
    )
    argv = {
        "lint": ["lint", str(policy), "--inventory", str(INVENTORY)],
        "diff": ["diff", str(policy), str(policy), "--inventory", str(INVENTORY)],
        "shadow": [
            "shadow",
            "--policies",
            str(policy),
            "--inventory",
            str(INVENTORY),
            "--flows",
            str(HUBBLE),
        ],
    }[command]
    main(argv)
    hints = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("hint:")]
    assert hints == [
        "hint: no policy is in a namespace of the inventory (policies: default; "
        "inventory: kube-system, other, shop); policies that name no namespace "
        "were read as `default`: pass --default-namespace NS"
    ]
