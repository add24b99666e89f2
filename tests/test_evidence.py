"""Evidence sufficiency: periodicity, lost-event gaps, group states, tighten's holds."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from recommender.cli.parser import main
from recommender.flows.lost_events import parse_lost_line, read_lost_events
from recommender.inventory.files import read_inventory
from recommender.observe.factory import get_engine
from recommender.recommend.periodicity import (
    Periodicity,
    detect_period,
    lost_gaps,
    uncovered,
)
from recommender.recommend.pipeline import recommend
from recommender.recommend.stability import EvidenceInput, RuleEvidence, decide_state
from recommender.tighten import TightenHistory, tighten
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample" / "flows-train.jsonl.gz"
INVENTORY = ROOT / "data" / "sample" / "inventory.json"
T0 = pd.Timestamp("2026-11-02T00:00:00")
H = pd.Timedelta(hours=1)
D = pd.Timedelta(days=1)


# ---------------------------------------------------------------------------
# The periodicity detector on hand-made timelines
# ---------------------------------------------------------------------------


def _at(*offsets: pd.Timedelta) -> list[pd.Timestamp]:
    return [T0 + o for o in offsets]


@pytest.mark.parametrize(
    ("hours", "kind", "occurrences", "period", "required"),
    [
        pytest.param(_at(*(k * H for k in range(10))), "hourly", 1, 1, 2, id="every-hour"),
        pytest.param(
            _at(3 * H, D + 3 * H, 2 * D + 4 * H, 3 * D + 3 * H, 3 * D + 4 * H),
            "daily",
            4,
            24,
            25,
            id="daily-with-jitter-and-a-two-hour-run",
        ),
        pytest.param(
            _at(0 * H, 7 * D, 7 * D + H, 14 * D + 2 * H), "weekly", 3, 168, 169, id="weekly"
        ),
        pytest.param(_at(0 * H, 5 * H, 35 * H), "irregular", 3, None, 31, id="irregular"),
        pytest.param(_at(0 * H, 2 * D + 5 * H), "irregular", 2, None, 54, id="two-runs-apart"),
        pytest.param(_at(4 * H), "once", 1, None, 169, id="seen-once"),
        pytest.param(_at(4 * H, 5 * H), "once", 1, None, 169, id="once-over-an-hour-boundary"),
        pytest.param([], "unseen", 0, None, 0, id="unseen"),
    ],
)
def test_detect_period(hours, kind, occurrences, period, required) -> None:
    p = detect_period(hours)
    assert (p.kind, p.occurrences, p.period_hours) == (kind, occurrences, period)
    assert p.required_absence_hours() == required


def test_seen_once_is_not_recurring_but_steady_traffic_is() -> None:
    assert not detect_period(_at(0 * H)).seen_twice
    assert detect_period(_at(0 * H, H, 2 * H)).seen_twice
    assert detect_period(_at(0 * H, D)).seen_twice


def test_lost_events_merge_into_hourly_gaps() -> None:
    from recommender.flows.lost_events import LostEvent

    events = [
        LostEvent(T0 + pd.Timedelta(minutes=10), 5, "n1"),
        LostEvent(T0 + pd.Timedelta(minutes=50), 7, "n2"),
        LostEvent(T0 + pd.Timedelta(minutes=80), 1, "n1"),
        LostEvent(T0 + 5 * H, 100, None),
    ]
    gaps = lost_gaps(events)
    assert [(g.start, g.end, g.events, g.records, g.nodes) for g in gaps] == [
        (T0, T0 + 2 * H, 13, 3, ("n1", "n2")),
        (T0 + 5 * H, T0 + 6 * H, 100, 1, ()),
    ]
    assert uncovered(T0, T0 + 10 * H, gaps) == 7 * H
    assert uncovered(T0 + H, T0 + 2 * H, gaps) == pd.Timedelta(0)


def test_lost_events_of_the_sample_have_their_time_node_and_count() -> None:
    events = read_lost_events([str(SAMPLE)])
    assert events is not None
    assert len(events) == 5
    first = events[0]
    assert (first.time, first.count, first.node) == (
        pd.Timestamp("2026-11-02T00:03:27.934617650"),
        125,
        "webshop/webshop-control-plane",
    )
    assert first.ref == f"{SAMPLE}:{first.ref.rsplit(':', 1)[1]}"
    assert sum(e.count for e in events) == 1162  # what the reader counts in total
    assert read_lost_events(["-"]) is None  # stdin cannot be read twice
    assert parse_lost_line(b'{"lost_events":{"num_events_lost":"-1"},"time":"x"}') is None


# ---------------------------------------------------------------------------
# The state rules
# ---------------------------------------------------------------------------


def _rule(first: pd.Timestamp, pattern: Periodicity) -> RuleEvidence:
    text = first.strftime("%Y-%m-%dT%H:%M:%SZ")
    return RuleEvidence(("egress", "shop/x", "TCP", 80), 10, text, text, 1, 1, pattern)


HOURLY = Periodicity("hourly", 1, 1)
ONCE = Periodicity("once", 1)
END = T0 + 10 * D


@pytest.mark.parametrize(
    ("start", "rules", "gaps", "state", "reason"),
    [
        pytest.param(
            END - 20 * H,
            [_rule(END - 20 * H, HOURLY)],
            (),
            "learning",
            "window 20.0 h < 24 h",
            id="short",
        ),
        pytest.param(T0, [], (), "learning", "no learned rule", id="no-rule"),
        pytest.param(
            T0,
            [_rule(T0, HOURLY), _rule(END - 5 * H, HOURLY)],
            (),
            "learning",
            "1 rule(s) first seen in the last 24 h",
            id="new-rule",
        ),
        pytest.param(
            END - 3 * D,
            [_rule(END - 3 * D, HOURLY)],
            (),
            "stabilizing",
            "window 72.0 h < 168 h",
            id="window-under-a-week",
        ),
        pytest.param(
            T0,
            [_rule(END - 2 * D, HOURLY)],
            (),
            "stabilizing",
            "1 rule(s) first seen in the last 3 windows",
            id="changed-recently",
        ),
        pytest.param(
            T0,
            [_rule(T0, HOURLY), _rule(T0 + D, ONCE)],
            (),
            "stabilizing",
            "1 rule(s) seen in only one occurrence",
            id="weekly-job-seen-once",
        ),
        pytest.param(
            T0,
            [_rule(T0, HOURLY)],
            "gap",
            "stabilizing",
            "lost events in the window (9)",
            id="lost-events",
        ),
        pytest.param(
            T0,
            [_rule(T0, HOURLY), _rule(T0, Periodicity("weekly", 2, 168, 168))],
            (),
            "stable",
            None,
            id="stable",
        ),
    ],
)
def test_state_rules(start, rules, gaps, state, reason) -> None:
    from recommender.flows.lost_events import LostEvent

    found = lost_gaps([LostEvent(END - 30 * H, 9)]) if gaps == "gap" else ()
    got, reasons = decide_state(rules, start, END, found)
    assert got == state
    assert (reason in reasons) if reason else reasons == ()


# ---------------------------------------------------------------------------
# Hand-made flows from real sample lines: steady traffic and a weekly job seen once
# ---------------------------------------------------------------------------


def _real(src_pod: str, port: int) -> dict:
    """The first connection request of the sample from ``src_pod*`` to ``port``."""
    with gzip.open(SAMPLE, "rt") as fh:
        for line in fh:
            if src_pod not in line or f'"destination_port":{port}' not in line:
                continue
            doc = json.loads(line)
            f = doc["flow"]
            if f["source"].get("pod_name", "").startswith(src_pod) and not f.get("is_reply"):
                return doc
    raise AssertionError(f"no sample line from {src_pod} to {port}")


def _line(doc: dict, at: pd.Timestamp, sport: int) -> str:
    d = copy.deepcopy(doc)
    text = at.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    d["time"] = d["flow"]["time"] = text
    d["flow"]["l4"]["TCP"]["source_port"] = sport
    return json.dumps(d)


def _lost(at: pd.Timestamp, n: int) -> str:
    text = at.strftime("%Y-%m-%dT%H:%M:%S.000000000Z")
    lost = {"source": "PERF_EVENT_RING_BUFFER", "num_events_lost": str(n)}
    return json.dumps({"lost_events": lost, "node_name": "webshop/webshop-worker", "time": text})


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    return {
        "steady": _real("frontend-", 8080),  # shop/frontend -> shop/catalog
        "job": _real("nightly-report-", 5432),  # batch/nightly-report -> data/postgres
    }


@pytest.fixture(scope="module")
def eight_days(docs, tmp_path_factory) -> Path:
    """Steady traffic every hour for 8 days; the weekly job once, on day 4."""
    lines = [
        _line(docs["steady"], T0 + k * H + 5 * pd.Timedelta(minutes=1), 30000 + k)
        for k in range(8 * 24)
    ]
    lines.append(_line(docs["job"], T0 + 4 * D + 2 * H, 50000))
    path = tmp_path_factory.mktemp("eight-days") / "flows.jsonl"
    path.write_text("\n".join(sorted(lines, key=lambda x: json.loads(x)["time"])) + "\n")
    return path


@pytest.fixture(scope="module")
def recommended(eight_days, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec")
    argv = ["recommend", "--flows", str(eight_days), "--inventory", str(INVENTORY)]
    assert main([*argv, "--out", str(out / "policies"), "--json", str(out / "rec.json")]) == 0
    return out


def test_weekly_job_seen_once_is_not_stable(recommended) -> None:
    doc = json.loads((recommended / "rec.json").read_text())
    states = {f"{g['namespace']}/{g['name']}": g for g in doc["evidence"]["groups"]}
    job = states["batch/nightly-report"]
    assert job["state"] == "stabilizing"
    assert job["reasons"] == ["1 rule(s) seen in only one occurrence"]
    [rule] = job["rules"]
    assert rule["peer"].startswith('data/{"app":"postgres"')
    assert (rule["direction"], rule["pattern"], rule["hours_seen"]) == ("egress", "once", 1)
    assert states["data/postgres"]["state"] == "stabilizing"
    assert states["shop/frontend"]["state"] == "stable"  # steady for 8 days, nothing new
    assert states["shop/frontend"]["rules"][0]["pattern"] == "hourly"
    assert states["shop/frontend"]["days_seen"] == 8
    assert {g["state"] for g in doc["groups"] if g["name"] == "nightly-report"} == {"stabilizing"}
    summary = (recommended / "policies" / "SUMMARY.md").read_text()
    assert "| batch/nightly-report | stabilizing | 1 |" in summary
    assert "| shop/frontend | stable |" in summary


def _tighten(recommended: Path, tmp: Path, *source: str) -> tuple[int, str]:
    out = tmp / "tightened"
    argv = ["tighten", "--policies", str(recommended / "policies"), "--inventory", str(INVENTORY)]
    code = main([*argv, *source, "--out", str(out), "--json", str(tmp / "t.json"), "--force"])
    return code, (out / "TIGHTEN.md").read_text() if code == 0 else ""


def test_tighten_keeps_a_weekly_job_seen_once_after_3_days(
    eight_days, recommended, tmp_path, capsys
) -> None:
    store = tmp_path / "s.duckdb"
    assert main(["observe", "--flows", str(eight_days), "--store", str(store)]) == 0
    code, md = _tighten(recommended, tmp_path, "--store", str(store), "--since", "2d")
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "t.json").read_text())
    held = {n["rule"]: n["text"] for n in report["kept"] if n["kind"] == "evidence-hold"}
    assert sorted(held) == ["batch/nightly-report#egress[0]", "data/postgres#ingress[0]"]
    why = held["batch/nightly-report#egress[0]"]
    assert why.startswith("kept: last seen 2026-11-06T02:00:00Z, once (it may be a weekly job)")
    assert "absent 93.1 h; 169 h of observed absence are needed" in why
    assert not [c for c in report["changes"] if c["rule"] in held]
    assert "`evidence-hold` `batch/nightly-report#egress[0]`" in md
    # The same store, a week later: the absence is long enough, the rule goes.
    later = ("--store", str(store), "--since", "2d", "--now", "2026-11-14T00:00:00Z")
    assert _tighten(recommended, tmp_path, *later)[0] == 0
    report = json.loads((tmp_path / "t.json").read_text())
    pruned = {c["rule"] for c in report["changes"] if c["kind"] == "prune-rule"}
    assert "batch/nightly-report#egress[0]" in pruned
    assert not [n for n in report["kept"] if n["kind"] == "evidence-hold"]


def test_lost_event_gap_covering_the_absence_keeps_the_rule(docs, tmp_path) -> None:
    """Steady traffic stops at hour 30 while the capture loses events every hour after."""
    job = [_line(docs["job"], T0 + k * H, 50000 + k) for k in range(40)]  # present throughout
    steady = [_line(docs["steady"], T0 + k * H, 30000 + k) for k in range(31)]
    lost = [_lost(T0 + k * H + pd.Timedelta(minutes=30), 50) for k in range(31, 40)]
    inventory = read_inventory([str(INVENTORY)])
    policies = _policies(tmp_path, job + steady, inventory)
    window = tmp_path / "window.jsonl"
    window.write_text("\n".join(job[32:]) + "\n")  # hours 32-39: the steady rule is absent
    observations = get_engine().aggregate([str(window)], inventory).observations
    everything = tmp_path / "all.jsonl"
    for with_lost in (True, False):
        everything.write_text("\n".join(job + steady + (lost if with_lost else [])) + "\n")
        buckets = get_engine().aggregate([str(everything)], inventory, bucket="1h").observations
        history = TightenHistory(buckets, read_lost_events([str(everything)]))
        result = tighten(policies, observations, inventory, history=history)
        held = {n.rule: n.text for n in result.notes if n.kind == "evidence-hold"}
        pruned = {c.rule for c in result.changes if c.kind == "prune-rule"}
        if with_lost:
            assert "shop/frontend#egress[0]" in held
            assert "8.0 h of it in lost-event gaps" in held["shop/frontend#egress[0]"]
            assert "shop/frontend#egress[0]" not in pruned
        else:  # absent 9 h with nothing lost: an hourly rule that long away is unused
            assert "shop/frontend#egress[0]" in pruned
            assert not held


def _policies(tmp_path: Path, lines: list[str], inventory) -> list:
    path = tmp_path / "learn.jsonl"
    path.write_text("\n".join(lines) + "\n")
    obs = get_engine().aggregate([str(path)], inventory).observations
    return recommend(obs, inventory).policies


def test_sample_summary_shows_every_groups_state(tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["recommend", "--flows", str(SAMPLE), "--inventory", str(INVENTORY), "--out", str(out)]
    assert main(argv) == 0
    summary = (out / "SUMMARY.md").read_text()
    section = summary.split("## Evidence sufficiency", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in section.splitlines() if r.startswith("| ") and " | learning | " in r]
    assert len(rows) == 19  # every group of the sample: a 12-hour window is still learning
    assert "- lost-event gaps: 3" in section
    assert "575 lost event(s) in 3 record(s)" in section
    assert "timelines from hourly buckets" in section
    assert "| batch/nightly-report | egress to data/postgres TCP/5432 |" in section


def test_now_sets_the_window_end(eight_days, tmp_path) -> None:
    inventory = read_inventory([str(INVENTORY)])
    obs = get_engine().aggregate([str(eight_days)], inventory).observations
    late = recommend(obs, inventory, evidence=EvidenceInput(now="2026-11-20T00:00:00Z"))
    assert late.stability is not None
    assert late.stability.window[1] == "2026-11-20T00:00:00Z"
    assert late.stability.history == "first/last seen"
    job = next(g for g in late.stability.groups if g.name == "nightly-report")
    assert job.state == "stabilizing"


def test_report_shows_each_groups_state(recommended) -> None:
    from recommender.report.html_sources import build_report, read_sources

    for source in (recommended / "policies", recommended / "rec.json"):
        data = build_report(read_sources([str(source)]), "t")
        [table] = [t for t in data.tables if t.id == "evidence"]
        rows = {r[0]: r for r in table.rows}
        assert rows["batch/nightly-report"][1:3] == ("stabilizing", "1")
        assert rows["batch/nightly-report"][-1] == "1 rule(s) seen in only one occurrence"
        assert rows["shop/frontend"][1] == "stable"


def test_lost_event_times_are_unknown_for_parquet(tmp_path) -> None:
    converted = tmp_path / "flows.bin"
    converted.write_bytes(b"PAR1" + b"\0" * 16 + b"lost_events")
    (tmp_path / "spark.parquet").mkdir()
    assert read_lost_events([str(converted)]) is None
    assert read_lost_events([str(tmp_path / "spark.parquet")]) is None
