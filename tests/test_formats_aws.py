"""AWS VPC flow logs: every real sample with hand-checked rows, the pitfalls, a fuzz test.

Expected values are read off the sample lines by hand (tests/samples/aws-vpc-flow-logs,
FORMATS.md 2.5), not produced by the reader.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.flows import aws, sniff
from tests.conftest import SAMPLES
from tests.vpc_support import read_rows, write

AWS = SAMPLES / "aws-vpc-flow-logs"
#: (line, kind, client ip, client port, server ip, server port, is_reply, orientation)
V2 = [
    # 20641 -> 22: no flags in v2, neither port ephemeral: cannot tell, kept as logged.
    (1, "flow", "172.31.16.139", 20641, "172.31.16.21", 22, None, "unknown"),
    (2, "flow", "172.31.9.69", 49761, "172.31.9.12", 3389, False, "inferred"),
    (3, "nodata", None, None, None, None, None, None),
    (4, "skipdata", None, None, None, None, None, None),
    # ICMP: no type in VPC logs, so no orientation and no port.
    (5, "flow", "203.0.113.12", 0, "172.31.16.139", None, None, "unknown"),
    (6, "flow", "172.31.16.139", 0, "203.0.113.12", None, None, "unknown"),
    (
        7,
        "flow",
        "2001:db8:1234:a100:8d6e:3477:df66:f105",
        34892,
        "2001:db8:1234:a102:3304:8879:34cf:4071",
        22,
        False,
        "inferred",
    ),
]
CLIENT, SERVER = "52.213.180.42", "10.0.0.62"
TCP_FLAGS = [
    (1, "header", None, None, None, None, None, None),
    (2, "flow", CLIENT, 43416, SERVER, 5001, False, "tcp_flags"),  # flags 2 = SYN
    (3, "flow", CLIENT, 43416, SERVER, 5001, True, "tcp_flags"),  # 18 = SYN-ACK: swapped
    (4, "flow", CLIENT, 43418, SERVER, 5001, False, "tcp_flags"),
    (5, "flow", CLIENT, 43418, SERVER, 5001, True, "tcp_flags"),
    (6, "flow", CLIENT, 43418, SERVER, 5001, True, "inferred"),  # 1 = FIN only: ports
    (7, "flow", CLIENT, 43418, SERVER, 5001, False, "inferred"),
    (8, "flow", CLIENT, 43638, SERVER, 5001, False, "tcp_flags"),  # 3 = SYN+FIN
    (9, "flow", CLIENT, 43638, SERVER, 5001, True, "tcp_flags"),  # 19; two spaces in line
]
TGW = [(1, "header", None, None, None, None, None, None)] + [
    (n, "flow", "10.20.33.164", 39812, "10.40.2.236", 80, n % 2 == 1, "tcp_flags")
    for n in range(2, 6)
]
V5 = [
    (1, "header", None, None, None, None, None, None),
    (2, "flow", "10.0.0.71", 34210, "52.95.128.179", 80, True, "tcp_flags"),
    (3, "flow", "10.0.0.71", 34210, "52.95.128.179", 80, False, "tcp_flags"),
]
# 29 fields, no header: all v2-v5 fields; pkt-dstaddr 10.200.0.80 (dstaddr 10.200.0.0).
ELASTIC = [(1, "flow", "89.160.20.156", 50041, "10.200.0.80", 33004, None, "unknown")]


def _shape(row):
    return (
        row["line_no"],
        row["line_kind"],
        row["src_ip"],
        row["src_port"],
        row["dst_ip"],
        row["server_port"],
        row["is_reply"],
        row["orientation"],
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default-v2-doc-examples.log", V2),
        ("custom-v3-tcp-flags-doc-examples.log", TCP_FLAGS),
        ("custom-v3-transit-gateway-doc-examples.log", TGW),
        ("custom-v5-traffic-path-doc-examples.log", V5),
        ("elastic-integrations-test-v5-all-fields.log", ELASTIC),
    ],
    ids=["v2", "v3-tcp-flags", "v3-transit-gateway", "v5-traffic-path", "elastic-v5-all"],
)
def test_every_sample_read(name, expected):
    rows = read_rows(aws, AWS / name)
    assert [_shape(r) for r in rows] == expected
    assert all(r["source_format"] == "aws_vpc" for r in rows)


def test_v2_times_verdicts_and_observer():
    rows = {r["line_no"]: r for r in read_rows(aws, AWS / "default-v2-doc-examples.log")}
    assert rows[1]["time_start"] == datetime(2014, 12, 14, 4, 6, 50)  # 1418530010
    assert rows[1]["time_end"] == datetime(2014, 12, 14, 4, 7, 50)  # 1418530070
    assert rows[1]["observer"] == "eni-1235b8ca123456789"
    assert (rows[1]["verdict"], rows[1]["drop_reason"]) == ("allowed", None)
    # REJECT is a security group / NACL decision: denied, never a NetworkPolicy drop.
    assert (rows[2]["verdict"], rows[2]["drop_reason"], rows[2]["is_policy_drop"]) == (
        "denied",
        "REJECT",
        False,
    )
    assert [rows[n]["protocol"] for n in (1, 5, 7)] == ["TCP", "ICMPv4", "TCP"]
    assert [rows[n]["ip_version"] for n in (1, 7)] == [4, 6]
    assert rows[3]["time_start"] is None  # NODATA is no flow


def test_pkt_addresses_win_over_interface_addresses():
    """Line 4 logs srcaddr 10.40.1.175 (the ENI's) but pkt-srcaddr 10.20.33.164."""
    rows = read_rows(aws, AWS / "custom-v3-transit-gateway-doc-examples.log")
    assert {r["src_ip"] for r in rows[1:]} == {"10.20.33.164"}
    assert "10.40.1.175" not in {r["dst_ip"] for r in rows}
    assert [r["observer"] for r in rows[1:]] == [
        "eni-33333333333333333",
        "eni-33333333333333333",
        "eni-11111111111111111",
        "eni-22222222222222222",
    ]
    assert all(r["time_start"] is None for r in rows)  # this format has no start/end


def test_flow_direction_gives_the_reporter():
    """v5 line 2: a reply (SYN-ACK) logged on ingress at 10.0.0.71 = the client's ENI."""
    rows = read_rows(aws, AWS / "custom-v5-traffic-path-doc-examples.log")
    assert [r["reporter"] for r in rows[1:]] == ["src", "src"]
    flags = read_rows(aws, AWS / "custom-v3-tcp-flags-doc-examples.log")
    assert {r["reporter"] for r in flags[1:]} == {"unknown"}  # no flow-direction field


def test_cloudwatch_format_string_header(tmp_path):
    text = (
        "${version} ${srcaddr} ${dstaddr} ${srcport} ${dstport} ${protocol} ${start} "
        "${tcp-flags} ${log-status}\n"
        "3 10.1.0.5 10.1.0.9 40000 443 6 1700000000 2 OK\n"
    )
    rows = read_rows(aws, write(tmp_path, "cw.log", text))
    assert [_shape(r) for r in rows] == [
        (1, "header", None, None, None, None, None, None),
        (2, "flow", "10.1.0.5", 40000, "10.1.0.9", 443, False, "tcp_flags"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("3 10.1.0.5 10.1.0.9 40000 443 6", "6 fields and no header line"),
        ("2 1 eni-1 10.0.0.1 10.0.0.2 70000 80 6 1 1 1 2 ACCEPT OK", "invalid srcport: 70000"),
        ("2 1 eni-1 10.0.0.1 10.0.0.2 1 80 6 1 1 1 2 MAYBE OK", "unknown action MAYBE"),
        ("2 1 eni-1 10.0.0.1 10.0.0.2 1 80 6 1 1 1 2 ACCEPT BAD", "unknown log-status BAD"),
        ("2 1 eni-1 - 10.0.0.2 1 80 6 1 1 1 2 ACCEPT OK", "no srcaddr"),
        ("2 1 eni-1 10.0.0.1 10.0.0.2 1 80 6x 1 1 1 2 ACCEPT OK", "invalid protocol: 6x"),
        ("2 1 eni-1 10.0.0.1 10.0.0.2 1 80 6 1 1 - 2 ACCEPT OK", "no start time"),
    ],
    ids=["no-header", "port-range", "action", "log-status", "no-srcaddr", "protocol", "start"],
)
def test_bad_lines_are_counted_rejects(tmp_path, line, reason):
    rows = read_rows(aws, write(tmp_path, "bad.log", line + "\n"))
    assert [r["line_kind"] for r in rows] == ["reject"]
    assert rows[0]["reject_detail"].startswith(reason)
    assert rows[0]["raw_ref"].endswith("bad.log:1")


def test_field_count_must_match_the_header(tmp_path):
    text = "version srcaddr dstaddr\n2 10.0.0.1\n\n2 10.0.0.1 10.0.0.2\n"
    rows = read_rows(aws, write(tmp_path, "h.log", text))
    assert [r["line_kind"] for r in rows] == ["header", "reject", "blank", "reject"]
    assert rows[1]["reject_detail"] == "2 fields, the header names 3"
    assert rows[3]["reject_detail"] == "no protocol"


def test_sniff():
    # the test the format registry (recommender/flows/formats.py) detects AWS by
    assert sniff.is_aws((AWS / "default-v2-doc-examples.log").read_text().splitlines()[0])
    assert sniff.is_aws((AWS / "custom-v5-traffic-path-doc-examples.log").read_text())
    assert not sniff.is_aws('{"flow": {"time": "2024-01-01T00:00:00Z"}}')


_TOKENS = st.sampled_from(
    [
        "2",
        "3",
        "-",
        "OK",
        "NODATA",
        "ACCEPT",
        "REJECT",
        "10.0.0.1",
        "::1",
        "6",
        "17",
        "1",
        "443",
        "99999",
        "eni-1",
        "1700000000",
        "srcaddr",
        "version",
        "${dstaddr}",
        "x'y",
        "\\",
    ]
)
_LINE = st.one_of(
    st.lists(_TOKENS, min_size=0, max_size=30).map(" ".join),
    st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINE, min_size=1, max_size=6))
def test_fuzz_never_raises(tmp_path, lines):
    path = write(tmp_path, "fuzz.log", "\n".join(lines) + "\n")
    rows = read_rows(aws, path)
    assert len(rows) == len(lines)
    kinds = {"flow", "reject", "blank", "header", "nodata", "skipdata"}
    assert {r["line_kind"] for r in rows} <= kinds
    for row in rows:
        assert (row["line_kind"] == "reject") == (row["reject_detail"] is not None)
