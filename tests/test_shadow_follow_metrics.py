"""``netpol shadow --follow --metrics-addr``: chunked judging counts like a batch run,
and a real scrape over loopback sees the counters move."""

from __future__ import annotations

import gzip
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.observe.engines.embedded import EmbeddedEngine
from recommender.observe.follow import ChunkJudge, FollowOptions
from recommender.policy_io.policy_yaml import load_policies
from recommender.report.metrics import ShadowMetrics
from recommender.report.shadow import build_report
from recommender.semantics import compile_policies
from recommender.shadow.core import ShadowRun, uncovered
from recommender.shadow.follow import (
    FollowedShadow,
    Tally,
    rule_ids,
    verdict_key,
    workload_labels,
)
from tests.conftest import FIXTURES, ROOT

DATA_DENY = FIXTURES / "shadow" / "data-default-deny.yaml"
_SAMPLE = re.compile(r"^(netpol_[a-z_]+)(\{[^}]*\})? (\S+)$")


@pytest.fixture(scope="module")
def stream(small_sim: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 1,500 lines of the simulation's fresh flows, plain, plus a lost-events line."""
    lines = gzip.decompress((small_sim / "flows-fresh.jsonl.gz").read_bytes()).splitlines(True)
    lost = b'{"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"7"}}\n'
    out = tmp_path_factory.mktemp("follow") / "flows.jsonl"
    out.write_bytes(b"".join(lines[:700]) + lost + b"".join(lines[700:1500]))
    return out


def _setup(small_sim: Path):
    inv = read_inventory([str(small_sim / "inventory-fresh.json")])
    policies = compile_policies(load_policies([str(DATA_DENY)]).policies, inv)
    return inv, policies


@pytest.fixture(scope="module")
def batch(small_sim: Path, stream: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``netpol shadow --json`` (a batch run) of the stream."""
    out = tmp_path_factory.mktemp("batch") / "batch.json"
    rc = main(
        ["shadow", "--policies", str(DATA_DENY), "--inventory",
         str(small_sim / "inventory-fresh.json"), "--flows", str(stream), "--json", str(out)]
    )  # fmt: skip
    assert rc == 0
    report: dict = json.loads(out.read_text())
    return report


def _no_refs(rows: list[dict]) -> list[dict]:
    """Edge rows without their sample references (``-:12`` vs ``path:12``)."""
    return [{k: v for k, v in r.items() if k != "refs"} for r in rows]


# -- the core: chunks judged like one batch ------------------------------------------


def test_chunked_judging_equals_one_batch_run(small_sim, stream, batch):
    inv, policies = _setup(small_sim)
    run = ShadowRun(policies, inv)
    metrics = ShadowMetrics(rule_ids(policies), uncovered(policies))
    raw_conns: list[int] = []

    def on_chunk(tally, stats):
        metrics.add(tally, stats.lost_events, stats.rejects)

    followed = FollowedShadow(run, str(stream))
    judge = ChunkJudge(EmbeddedEngine(), inv, followed, FollowOptions(), lambda v: None, on_chunk)
    real_judge = followed.judge

    def spy(batch, spool, offset):
        raw_conns.append(int(batch["conn_count"].sum()))
        return real_judge(batch, spool, offset)

    followed.judge = spy  # type: ignore[method-assign]
    lines = stream.read_bytes().splitlines(True)
    try:
        for start in range(0, len(lines), 600):  # chunk edges cut connections apart
            judge.add_lines(lines[start : start + 600])
            judge.flush()
    finally:
        judge.close()
    got = orjson.loads(orjson.dumps(build_report(run, uncovered(policies), {}, {})))  # as --json
    assert judge.chunks == 3
    # Each chunk alone counts a straddling connection again; the follow core does not.
    assert sum(raw_conns) > got["totals"]["connections"]
    assert got["totals"] == batch["totals"]
    for part in ("would_be_denied", "unknown", "cni_dropped", "uncovered_pods"):
        assert got[part] == batch[part], part  # references too: path:line of the stream
    assert judge.stats.connections == batch["totals"]["connections"]
    assert judge.stats.lost_events == batch["ingest"]["lost events"]
    assert judge.stats.rejected == batch["ingest"]["rejected lines"] > 0
    _assert_metrics_match(_parse(metrics.exposition().decode()), batch)


def _parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            out.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return out


def _sum(samples, name: str, **match: str) -> float:
    return sum(
        v for lab, v in samples.get(name, []) if all(lab.get(k) == x for k, x in match.items())
    )


def _assert_metrics_match(samples, report: dict) -> None:
    t = report["totals"]
    assert _sum(samples, "netpol_flows_processed_total") == t["records"]
    assert _sum(samples, "netpol_policy_verdicts_total") == t["connections"]
    assert (
        _sum(samples, "netpol_policy_verdicts_total", action="would_deny")
        == (t["would_deny_connections"])
    )
    dropped = sum(e["connections"] for e in report["cni_dropped"])
    assert _sum(samples, "netpol_policy_verdicts_total", action="cni_dropped") == dropped
    assert _sum(samples, "netpol_lost_events_total") == report["ingest"]["lost events"] > 0
    for direction, pods in report["uncovered_pods"].items():
        assert _sum(samples, "netpol_uncovered_pods", direction=direction) == len(pods)
    # Per workload: each would-be-denied edge counts where it was denied.
    per: dict[tuple[str, str], int] = {}
    for e in report["would_be_denied"]:
        end = e["src_workload"] if e["denied_by"] in ("egress", "both") else e["dst_workload"]
        key = ("egress" if e["denied_by"] in ("egress", "both") else "ingress", end)
        per[key] = per.get(key, 0) + e["connections"]
    assert per
    for (direction, end), n in per.items():
        ns, wl = workload_labels(end)
        got = _sum(
            samples,
            "netpol_policy_verdicts_total",
            action="would_deny",
            direction=direction,
            namespace=ns,
            workload=wl,
        )
        assert got == n, (direction, end)


# -- attribution of one verdict -----------------------------------------------------

_ROW = {
    "src_workload": "shop/deployment/web",
    "dst_workload": "data/statefulset/db",
    "cni_verdict": "allowed",
    "is_reply": False,
}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            {"verdict": "denied", "denied_by": "ingress", "rules": [],
             "policies": {"egress": [], "ingress": ["data/deny"]}},
            ("would_deny", "ingress", "data", "statefulset/db", "data/deny"),
        ),
        (
            {"verdict": "denied", "denied_by": "both", "rules": [],
             "policies": {"egress": ["shop/b", "shop/a"], "ingress": ["data/deny"]}},
            ("would_deny", "egress", "shop", "deployment/web", "shop/a,shop/b"),
        ),
        (
            {"verdict": "allowed", "denied_by": None,
             "rules": ["data/allow#ingress[1]", "shop/out#egress[0]"],
             "policies": {"egress": ["shop/out"], "ingress": ["data/allow", "data/deny"]}},
            ("allow", "ingress", "data", "statefulset/db", "data/allow"),
        ),
        (
            {"verdict": "allowed", "denied_by": None, "rules": ["shop/out#egress[0]"],
             "policies": {"egress": ["shop/out"], "ingress": []}},
            ("allow", "egress", "shop", "deployment/web", "shop/out"),
        ),
        (
            {"verdict": "allowed", "denied_by": None, "rules": [],
             "policies": {"egress": [], "ingress": []}},
            ("allow", "none", "data", "statefulset/db", ""),
        ),
        (
            {"verdict": "denied", "denied_by": "ingress", "rules": [],
             "cni_verdict": "policy_denied", "policies": {"egress": [], "ingress": ["data/deny"]}},
            ("cni_dropped", "ingress", "data", "statefulset/db", "data/deny"),
        ),
        (
            {"verdict": "unknown", "denied_by": None, "rules": [],
             "dst_workload": "unknown:10.9.9.9", "policies": {"egress": [], "ingress": []}},
            ("unknown", "none", "", "unknown", ""),
        ),
    ],
    ids=["ingress-deny", "both-deny-is-egress", "allow-ingress-rule", "allow-egress-only",
         "open", "cni-dropped", "unknown-no-ip-label"],
)  # fmt: skip
def test_verdict_key(row, expected):
    assert verdict_key({**_ROW, **row}) == expected


# -- the command: a real scrape over loopback -----------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _start(args: list[str], **kw) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=_env(),
        **kw,
    )
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline and b"serving metrics on" not in line:
        assert proc.stderr is not None
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "the command ended before serving"
    url = re.search(rb"(http://\S+/metrics)", line)
    assert url, line
    return proc, url.group(1).decode()


def _scrape(url: str) -> dict:
    req = urllib.request.Request(url, headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert "openmetrics" in resp.headers["Content-Type"]
        return _parse(resp.read().decode())


def _scrape_until(url: str, records: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        samples = _scrape(url)
        if _sum(samples, "netpol_flows_processed_total") >= records or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def _follow_args(small_sim: Path, flows: str, tmp_path: Path) -> list[str]:
    return [
        "shadow", "--policies", str(DATA_DENY),
        "--inventory", str(small_sim / "inventory-fresh.json"),
        "--flows", flows, "--follow", "--follow-interval", "1",
        "--metrics-addr", "127.0.0.1:0", "--json", str(tmp_path / "follow.json"),
        "--verdicts", str(tmp_path / "verdicts.jsonl"),
    ]  # fmt: skip


@pytest.mark.slow
def test_scrape_a_followed_stdin_stream(small_sim, stream, tmp_path, batch):
    lines = stream.read_bytes().splitlines(True)
    proc, url = _start(_follow_args(small_sim, "-", tmp_path), stdin=subprocess.PIPE)
    try:
        proc.stdin.write(b"".join(lines[:600]))
        proc.stdin.flush()
        one = _scrape_until(url, 1)
        assert 0 < _sum(one, "netpol_flows_processed_total") < batch["totals"]["records"]
        assert _sum(one, "netpol_policy_verdicts_total") > 0
        proc.stdin.write(b"".join(lines[600:]))
        proc.stdin.flush()
        two = _scrape_until(url, batch["totals"]["records"])
        assert _sum(two, "netpol_policy_verdicts_total") > _sum(one, "netpol_policy_verdicts_total")
        _assert_metrics_match(two, batch)  # the last scrape counts what the batch run reports
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "(end of input)" in proc.stderr.read().decode()
    got = json.loads((tmp_path / "follow.json").read_text())
    assert got["totals"] == batch["totals"]
    assert got["ingest"] == batch["ingest"]
    assert _no_refs(got["would_be_denied"]) == _no_refs(batch["would_be_denied"])
    assert got["would_be_denied"][0]["refs"][0].startswith("-:")
    verdicts = (tmp_path / "verdicts.jsonl").read_bytes().splitlines()
    assert len(verdicts) == batch["totals"]["records"]  # one line per record, in input order
    refs = [int(orjson.loads(v)["ref"].split(":")[1]) for v in verdicts]
    assert refs == sorted(refs)


@pytest.mark.slow
def test_followed_file_is_tailed_until_sigterm(small_sim, stream, tmp_path, batch):
    lines = stream.read_bytes().splitlines(True)
    live = tmp_path / "live.jsonl"
    live.write_bytes(b"".join(lines[:700]))
    proc, url = _start(_follow_args(small_sim, str(live), tmp_path))
    try:
        one = _sum(_scrape_until(url, 1), "netpol_flows_processed_total")
        assert 0 < one < batch["totals"]["records"]
        with live.open("ab") as fh:  # the file grows, as a log does
            fh.write(b"".join(lines[700:]))
        two = _scrape_until(url, batch["totals"]["records"])
        assert _sum(two, "netpol_flows_processed_total") == batch["totals"]["records"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "stopped by a signal" in proc.stderr.read().decode()
    got = json.loads((tmp_path / "follow.json").read_text())
    assert got["totals"] == batch["totals"]
    assert _no_refs(got["would_be_denied"]) == _no_refs(batch["would_be_denied"])
    assert got["would_be_denied"][0]["refs"][0].startswith(f"{live}:")


def test_metrics_addr_without_follow_is_refused(small_sim, capsys):
    rc = main(
        ["shadow", "--policies", str(DATA_DENY), "--inventory",
         str(small_sim / "inventory-fresh.json"), "--flows", "x.jsonl",
         "--metrics-addr", "127.0.0.1:0"]
    )  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "--metrics-addr needs --follow" in err[0]


# -- the Grafana dashboard ------------------------------------------------------------

_METRIC = re.compile(r"\b(netpol_[a-z_]+)(\{[^}]*\})?")
_BY = re.compile(r"\bby \(([^)]*)\)")


def _exprs(node) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("expr", "definition") and isinstance(v, str)]
        return found + [e for v in node.values() for e in _exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in _exprs(v)]
    return []


def test_grafana_dashboard_queries_only_what_the_exporter_exposes():
    from importlib.resources import files

    text = (files("recommender.report") / "grafana" / "netpol-shadow.json").read_text()
    dashboard = json.loads(text)
    metrics = ShadowMetrics(["a/p#ingress[0]"], {"ingress": ["a/x"], "egress": []})
    tally = Tally(
        verdicts={("would_deny", "ingress", "a", "deployment/x", "a/p"): 2},
        records=3,
        rule_last_seen={("a/p", "ingress", "0"): 1.0e9},
        rule_connections={("a/p", "ingress", "0"): 1},
    )
    metrics.add(tally, 1, {"not valid JSON": 1})
    samples = _parse(metrics.exposition().decode())
    exposed = {name: {k for labels, _ in rows for k in labels} for name, rows in samples.items()}
    exprs = _exprs(dashboard)
    assert len(exprs) >= 10
    used = set()
    for expr in exprs:
        names = [m.group(1) for m in _METRIC.finditer(expr)]
        assert names, expr
        for m in _METRIC.finditer(expr):
            name = m.group(1)
            assert name in exposed, f"{name} is not exposed (in {expr})"
            keys = set(re.findall(r"(\w+)=~?\"", m.group(2) or ""))
            assert keys <= exposed[name], (name, keys)
            used.add(name)
        for group in _BY.findall(expr):  # grouping labels exist on the metrics queried
            labels = {g.strip() for g in group.split(",")}
            assert labels <= set().union(*(exposed[n] for n in names)), expr
    assert used == {n for n in exposed if not n.endswith("_created")}  # every family has a panel
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("namespace/workload", "policy", "flows processed", "lost", "uncovered", "stale"):
        assert topic in titles, topic


def test_strict_names_the_stream_and_its_line(small_sim, stream):
    from recommender.errors import InputError

    inv, policies = _setup(small_sim)
    good = [ln for ln in stream.read_bytes().splitlines(True)[:40] if ln.startswith(b'{"flow"')]
    followed = FollowedShadow(ShadowRun(policies, inv), "-")
    options = FollowOptions(strict=True)
    judge = ChunkJudge(EmbeddedEngine(), inv, followed, options, lambda v: None, lambda t, s: None)
    try:
        judge.add_lines(good[:10])
        judge.flush()
        judge.add_lines([*good[10:13], b"{not json\n"])
        with pytest.raises(InputError) as err:
            judge.flush()
    finally:
        judge.close()
    assert (err.value.path, err.value.line) == ("-", 14)  # stream line 14, not chunk line 4
    assert str(err.value).startswith("-:14: ")
