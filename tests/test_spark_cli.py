"""``--engine spark`` without Java or without pyspark: one line, exit 2, no Spark noise."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from recommender.cli.parser import main
from tests.conftest import ROOT, SAMPLES

HUBBLE = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"


def _spark_run(tmp_path, java_home: str) -> subprocess.CompletedProcess:
    """``observations --engine spark`` with JAVA_HOME set and no java on the PATH."""
    bin_dir = tmp_path / "bin"  # only the shell tools Spark's launcher scripts need
    bin_dir.mkdir()
    for tool in ("sh", "bash", "dirname", "basename", "uname", "ls", "head", "cat", "ps"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "JAVA_HOME": java_home, "PATH": str(bin_dir)}
    return subprocess.run(
        [
            sys.executable,
            str(ROOT / "cli.py"),
            "observations",
            "--flows",
            str(HUBBLE),
            "--engine",
            "spark",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.mark.spark  # the launcher and SparkEngine are the extra's
def test_spark_without_java_is_one_line_exit_2(tmp_path):
    empty = tmp_path / "jdk"
    empty.mkdir()
    proc = _spark_run(tmp_path, str(empty))
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"error: --engine spark cannot start: Java 17 (JAVA_HOME has no bin/java) "
        f"(JAVA_HOME={empty}); install it, or drop --engine spark to use the embedded engine "
        "(the default)"
    ]


@pytest.mark.spark  # the launcher and SparkEngine are the extra's
def test_a_java_that_does_not_start_is_one_line_without_spark_noise(tmp_path):
    jdk = tmp_path / "jdk"
    (jdk / "bin").mkdir(parents=True)
    java = jdk / "bin" / "java"
    java.write_text(
        "#!/bin/sh\necho 'Error: could not create the Java Virtual Machine.' >&2\nexit 1\n"
    )
    java.chmod(0o755)
    proc = _spark_run(tmp_path, str(jdk))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "error: --engine spark cannot start: the Java gateway did not "
        "start (Error: could not create the Java Virtual Machine.)"
    )
    assert "JAVA_GATEWAY_EXITED" not in proc.stderr


def test_spark_without_pyspark_names_the_extra_and_the_embedded_engine(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyspark" else real(name, *a)
    )
    assert main(["observations", "--flows", str(HUBBLE), "--engine", "spark"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: --engine spark needs an optional dependency: run `pip install "
        "'netpol-recommender[spark]' (and Java 17)`, or drop --engine spark to use "
        "the embedded engine (the default)"
    ]


@pytest.mark.spark  # the launcher and SparkEngine are the extra's
def test_spark_session_reports_a_failing_pyspark_import(monkeypatch):
    from recommender.errors import MissingDependencyError
    from recommender.observe.engines.spark import SparkEngine

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)  # import raises ImportError
    with pytest.raises(MissingDependencyError, match="or use the embedded engine"):
        SparkEngine().session()
