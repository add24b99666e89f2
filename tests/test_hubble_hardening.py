"""Hubble input that lies (issue 18): never a crash, never a changed conclusion.

Each hostile line is a counted reject with its ``file:line``; the valid lines
around it are read as if it were not there.
"""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.cli.parser import main
from recommender.flows.hubble_checks import IPV4_RE, IPV6_RE, k8s_label_re
from recommender.labels import decode_labels, is_valid_label_key, is_valid_label_value
from tests.test_hubble import ENGINE, POD_A, POD_B, make_flow, write_lines

FORGED = 'k8s:app=client","role":"admin'


def with_src_label(label: str, **flow) -> dict:
    """A flow whose client carries ``label`` as its first label."""
    src = copy.deepcopy(POD_A)
    src["labels"] = [label, *src["labels"][1:]]
    return make_flow(src=src, **flow)


def observations(path: str, capsys, *extra: str) -> tuple[int, str, str]:
    code = main(["observations", "--flows", path, *extra])
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    assert "internal error" not in out.err
    return code, out.out, out.err


def test_forged_label_is_one_reject_and_the_other_100_lines_are_read(tmp_path, capsys):
    lines = [make_flow(sport=40000 + i) for i in range(100)]
    lines.insert(37, with_src_label(FORGED, sport=50000, dport=8080))
    path = write_lines(tmp_path / "forged.json", lines)
    code, out, err = observations(path, capsys, "--json", str(tmp_path / "o.json"))
    assert code == 0
    assert "rejected lines: 1 (invalid label: 1)" in out
    assert f"{path}:38: invalid label: {FORGED}" in out
    doc = json.loads((tmp_path / "o.json").read_text())
    assert doc["stats"]["flow_records"] == 100
    assert [r["src_labels"] for r in doc["observations"]] == [{"app": "web"}]
    assert doc["observations"][0]["connections"] == 100
    assert all(r["port"] == 5432 for r in doc["observations"])  # the forged 8080 is gone


def test_forged_label_is_fatal_with_strict(tmp_path, capsys):
    path = write_lines(tmp_path / "f.json", [make_flow(), with_src_label(FORGED)])
    assert main(["observations", "--flows", path, "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:2: invalid label" in err
    assert "Traceback" not in err


#: (id, hostile line, reject reason of the summary)
HOSTILE = [
    ("quote", with_src_label('k8s:app=a"b'), "invalid label"),
    ("backslash", with_src_label("k8s:app=a\\b"), "invalid label"),
    ("newline", with_src_label("k8s:app=a\nb"), "invalid label"),
    ("unicode-value", with_src_label("k8s:app=caf\u00e9"), "invalid label"),
    ("unicode-key", with_src_label("k8s:r\u00f4le=x"), "invalid label"),
    ("separator", with_src_label("reserved:world\x1fk8s:role=admin"), "invalid label"),
    ("long-value", with_src_label("k8s:app=" + "a" * 64), "invalid label"),
    ("duplicate-key", with_src_label("k8s:app=db"), "duplicate label key"),
    ("namespace", make_flow(src={**POD_A, "namespace": "shop\x1eevil"}), "invalid endpoint name"),
    ("identity", make_flow(dst={**POD_B, "identity": 1 << 32}), "identity out of range"),
    ("ip", make_flow(sip="10.0.0.256"), "invalid IP address"),
    ("port", make_flow(dport=65536), "number out of range"),
    ("port-float", make_flow(dport=80.5), "number out of range"),
    ("port-negative", make_flow(sport=-1), "number out of range"),
    ("icmp", make_flow(proto="ICMPv4", dport=256), "number out of range"),
    (
        "lost-uint64-max",
        {"lost_events": {"num_events_lost": str((1 << 64) - 1)}, "time": "2026-01-01T00:00:00Z"},
        "number out of range",
    ),
    ("year-minus-1", make_flow(time="-0001-01-01T00:00:00Z"), "missing or invalid time"),
    ("year-10000", make_flow(time="10000-01-01T00:00:00Z"), "missing or invalid time"),
]


#: The cases of the issue, each through the CLI on its own; the others share one file.
ONE_BY_ONE = (
    "quote",
    "backslash",
    "newline",
    "unicode-value",
    "lost-uint64-max",
    "year-minus-1",
    "year-10000",
)


@pytest.mark.parametrize(
    ("line", "reason"),
    [h[1:] for h in HOSTILE if h[0] in ONE_BY_ONE],
    ids=[h[0] for h in HOSTILE if h[0] in ONE_BY_ONE],
)
def test_hostile_line_is_a_counted_reject(tmp_path, capsys, line, reason):
    path = write_lines(tmp_path / "h.json", [make_flow(), line, make_flow(sport=40001)])
    code, out, _ = observations(path, capsys)
    assert code == 0
    assert f"rejected lines: 1 ({reason}: 1)" in out
    assert f"{path}:2: {reason}" in out
    assert "(1 observations)" in out


def test_every_hostile_line_is_one_counted_reject(tmp_path, capsys):
    lines = [copy.deepcopy(h[1]) for h in HOSTILE]
    dup = [h[0] for h in HOSTILE].index("duplicate-key")
    lines[dup]["flow"]["source"]["labels"].append("k8s:app=web")  # its twin
    path = write_lines(tmp_path / "all.json", [make_flow(), *lines])
    code, out, _ = observations(path, capsys, "--json", str(tmp_path / "o.json"))
    assert code == 0
    stats = json.loads((tmp_path / "o.json").read_text())["stats"]
    expected: dict[str, int] = {}
    for _, _, reason in HOSTILE:
        expected[reason] = expected.get(reason, 0) + 1
    assert stats["rejects"] == expected
    assert stats["flow_records"] == 1
    assert f'{path}:2: invalid label: k8s:app=a"b' in out
    assert f"{path}:4: invalid label: k8s:app=a?b" in out  # one line, whatever the input


def test_valid_label_syntax_still_reads(tmp_path, capsys):
    """The API's syntax, not more: prefixes, dots, the empty value, 63 characters."""
    src = copy.deepcopy(POD_A)
    src["labels"] += ["k8s:example.com/tier=" + "b" * 63, "k8s:empty=", "k8s:A_b.c-D=x.Y_z-1"]
    path = write_lines(tmp_path / "v.json", [make_flow(src=src)])
    result = ENGINE.aggregate([path])
    assert result.stats.rejects == {}
    labels = decode_labels(result.observations.iloc[0]["src_labels"])
    assert labels == {"app": "web", "example.com/tier": "b" * 63, "empty": "", "A_b.c-D": "x.Y_z-1"}


def test_valid_lost_events_and_edge_times_still_read(tmp_path):
    lines = [
        {"lost_events": {"num_events_lost": "4294967295"}, "time": "2026-01-01T00:00:00Z"},
        make_flow(time="0001-01-01T00:00:00Z"),
        make_flow(sport=40001, time="9999-12-31T23:59:59.999999Z"),
    ]
    result = ENGINE.aggregate([write_lines(tmp_path / "t.json", lines)])
    assert result.stats.rejects == {}
    assert result.stats.lost_events == 4294967295
    obs = result.observations.iloc[0]
    assert (obs["first_seen"].year, obs["last_seen"].year) == (1, 9999)


# ---------------------------------------------------------------------------
# The SQL syntax checks equal their Python twins.
# ---------------------------------------------------------------------------


def test_sql_label_check_equals_python_twin():
    import duckdb

    from recommender.flows.hubble_checks import label_ok_sql

    con = duckdb.connect()
    sql = f"SELECT {label_ok_sql('l')} FROM (SELECT $1::VARCHAR AS l)"
    part = st.text(alphabet='aZ09-_./"\\=\n\u00e9 ', max_size=70)

    @settings(max_examples=200, deadline=None)
    @given(part, part)
    def check(key, value):
        label = f"k8s:{key}={value}"
        expected = "=" not in key and is_valid_label_key(key) and is_valid_label_value(value)
        assert con.execute(sql, [label]).fetchone()[0] is expected

    check()


def test_ip_patterns_accept_only_what_python_accepts():
    import ipaddress
    import re

    pattern = re.compile(rf"(?:{IPV4_RE}|{IPV6_RE})")
    good = [
        "10.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "2001:db8::8a2e:370:7334",
        "::ffff:10.0.0.1",
        "1:2:3:4:5:6:7:8",
        "1::",
        "64:ff9b::10.0.0.1",
    ]
    bad = ["10.0.0.256", "01.2.3.4", "1.2.3", ":::", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "x"]
    for ip in good:
        assert pattern.fullmatch(ip), ip
        ipaddress.ip_address(ip)
    for ip in bad:
        assert not pattern.fullmatch(ip), ip
    assert re.fullmatch(k8s_label_re(), "k8s:io.cilium.k8s.policy.serviceaccount=" + "a" * 100)


# ---------------------------------------------------------------------------
# Property: one mutated line among valid ones never crashes and never changes
# what the valid lines say.
# ---------------------------------------------------------------------------

_HOSTILE_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
_HOSTILE = st.one_of(
    _HOSTILE_TEXT,
    st.integers(-(1 << 70), 1 << 70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
#: Where a mutation lands: a path into the Flow (a list index is a label).
_PATHS = [
    ("source", "labels", 0),
    ("destination", "labels", 1),
    ("source", "namespace"),
    ("destination", "pod_name"),
    ("source", "identity"),
    ("source", "cluster_name"),
    ("destination", "workloads", 0, "name"),
    ("l4", "TCP", "destination_port"),
    ("l4", "TCP", "source_port"),
    ("IP", "source"),
    ("time",),
    ("verdict",),
    ("traffic_direction",),
    ("drop_reason",),
    ("event_type", "type"),
    ("destination_names",),
]


def _mutate(flow: dict, path: tuple, value: object, label_text: str) -> dict:
    flow = copy.deepcopy(flow)
    node = flow["flow"]
    for key in path[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    last = path[-1]
    if isinstance(last, int) and isinstance(value, str):
        value = label_text + value  # labels: hostile text after a plausible prefix
    if isinstance(node, dict) or isinstance(last, int):
        node[last] = value
    return flow


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.sampled_from(_PATHS), _HOSTILE, st.sampled_from(["k8s:app=", "k8s:", ""])),
        min_size=60,
        max_size=60,
    )
)
def test_mutated_lines_are_rejects_or_records_never_crashes(tmp_path_factory, mutations):
    """60 lines, each one valid flow with one field mutated, among 20 valid lines.

    Each mutated line gets its own client port range, so it is either exactly one
    counted reject or one more flow record; the valid lines' observation is the one
    it would be without them, and any label that got through is valid.
    """
    base = [make_flow(sport=40000 + i) for i in range(20)]
    dst = copy.deepcopy(POD_B)
    dst["labels"] = ["k8s:app=db", "k8s:tier=x"]
    mutated = [
        _mutate(make_flow(dst=dst, sport=50000 + i, dport=9000 + i), p, v, t)
        for i, (p, v, t) in enumerate(mutations)
    ]
    tmp = tmp_path_factory.mktemp("mut")
    path = write_lines(tmp / "m.json", base + mutated)
    result = ENGINE.aggregate([path])
    stats = result.stats
    assert stats.lines == 80
    assert sum(stats.rejects.values()) + stats.flow_records == 80
    obs = result.observations
    clean = obs[
        (obs["port"] == 5432)
        & (obs["src_labels"] == '{"app":"web"}')
        & (obs["dst_labels"] == '{"app":"db"}')
    ]
    assert len(clean) == 1
    assert int(clean.iloc[0]["connections"]) == 20
    for column in ("src_labels", "dst_labels"):
        for text in obs[column].dropna():
            for key, value in decode_labels(text).items():
                assert is_valid_label_key(key), text
                assert is_valid_label_value(value), text
    flows = ENGINE.read_flows([path])
    frame = flows.to_pandas()
    assert len(frame) == stats.flow_records
    assert flows.stats.rejects == stats.rejects
