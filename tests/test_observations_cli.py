"""``netpol observations``: outputs, summary, and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

from recommender.cli.parser import main
from tests.conftest import FIXTURES, ROOT, SAMPLES
from tests.test_hubble import make_flow, write_lines

MIXED = str(FIXTURES / "hubble" / "exporter-mixed.ndjson")
POS = str(SAMPLES / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress.ndjson")


def test_table_then_summary(capsys):
    assert main(["observations", "--flows", MIXED]) == 0
    out = capsys.readouterr().out
    assert out.index("shop/deployment/web {app=web}") < out.index("(1 observations)")
    assert "non-flow lines: 6" in out
    assert "lost_events: 2" in out
    assert "warning: Hubble reported 12 lost events" in out
    assert "reply packets: 1" in out
    assert "rejected lines: 0" in out


def test_json_rows_and_stats(tmp_path, capsys):
    out = tmp_path / "obs.json"
    assert main(["observations", "--flows", POS, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    rows = doc["observations"]
    assert len(rows) == 3
    assert doc["stats"]["connections"] == 4
    assert sum(doc["stats"]["observers"].values()) >= 4  # every connection has an observer
    assert {r["dst_workload"] for r in rows} == {"deployment/shop", "deployment/coredns", "world"}
    world = next(r for r in rows if r["dst_kind"] == "world")
    assert world["dst_ip"] == "104.20.23.154"
    assert world["src_labels"] == {"app": "pos", "app.kubernetes.io/name": "pos"}
    assert world["first_seen"] == "2026-09-13T11:18:04.209601Z"
    keys = {
        "src_kind",
        "src_namespace",
        "src_workload",
        "src_labels",
        "src_ip",
        "dst_kind",
        "dst_namespace",
        "dst_workload",
        "dst_labels",
        "dst_ip",
        "dst_names",
        "port",
        "protocol",
        "connections",
        "first_seen",
        "last_seen",
        "verdicts",
        "refs",
    }
    assert keys <= set(rows[0])
    # refuse to overwrite without --force, one line, exit 2
    assert main(["observations", "--flows", POS, "--json", str(out)]) == 2
    assert capsys.readouterr().err.strip().endswith("already exists (pass --force to replace it)")
    assert main(["observations", "--flows", POS, "--json", str(out), "--force"]) == 0


def test_csv_to_stdout_is_deterministic(capsys):
    assert main(["observations", "--flows", POS, "--csv", "-"]) == 0
    first = capsys.readouterr().out
    assert main(["observations", "--flows", POS, "--csv", "-"]) == 0
    assert capsys.readouterr().out == first
    rows = list(csv.DictReader(io.StringIO(first)))
    assert [r["port"] for r in rows] == ["80", "53", "443"]
    assert json.loads(rows[0]["verdicts"])["allowed"] == 1


def test_missing_file_is_one_line_exit_2(capsys, tmp_path):
    assert main(["observations", "--flows", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {tmp_path}/none.json: no such file"]


def test_strict_first_reject_exit_2(capsys, tmp_path):
    path = write_lines(tmp_path / "f.json", [make_flow(), "garbage", "{"])
    assert main(["observations", "--flows", path]) == 0
    out = capsys.readouterr().out
    assert "rejected lines: 2" in out
    assert f"{path}:2: not valid JSON" in out
    assert main(["observations", "--flows", path, "--strict"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"error: {path}:2: not valid JSON")


def test_stdin_and_no_traceback_without_debug(tmp_path):
    data = json.dumps(make_flow()) + "\n" + "\x00\x01 junk\n"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "observations", "--flows", "-", "--json", "-"],
        input=data,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stats"]["rejects"] == {"not valid JSON": 1}
    assert "-:2: not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_spark_engine_reports_missing_dependency(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    code = main(["observations", "--flows", POS, "--engine", "spark"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "pip install 'netpol-recommender[spark]'" in err


def test_spark_options_need_the_spark_engine(capsys):
    code = main(["observations", "--flows", POS, "--spark-master", "local[2]"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == "error: --spark-master and --spark-conf need --engine spark" or (
        "need --engine spark" in err and len(err.strip().splitlines()) == 1
    )
