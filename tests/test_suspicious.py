"""Scan detector: thresholds, and what it must leave alone."""

from __future__ import annotations

import pandas as pd
import pytest

from recommender.recommend import suspicious as s


def _edges(rows):
    return pd.DataFrame(rows, columns=list(s.SCAN_COLUMNS))


def _probe(src, dst, port, conns=1, inside=True, declared=False, proto="TCP"):
    return (src, dst, inside, port, proto, conns, declared)


def test_port_scan_at_threshold_is_flagged_and_one_below_is_not():
    at = [_probe("a/x", "b/db", 1000 + i) for i in range(s.PORT_SCAN_MIN_PORTS)]
    mask, findings = s.detect_scans(_edges(at))
    assert mask.all()
    assert [f.shape for f in findings] == ["port scan"]
    below = at[:-1]
    mask, findings = s.detect_scans(_edges(below))
    assert not mask.any()
    assert findings == []


def test_busy_edges_of_a_scanner_are_kept():
    rows = [_probe("a/x", "b/db", 2000 + i) for i in range(s.PORT_SCAN_MIN_PORTS)]
    rows.append(_probe("a/x", "b/api", 8080, conns=s.PROBE_MAX_CONNECTIONS + 1))
    mask, _ = s.detect_scans(_edges(rows))
    assert mask.tolist() == [True] * s.PORT_SCAN_MIN_PORTS + [False]


def test_port_fanout_across_peers():
    rows = [_probe("a/x", f"b/p{i % 3}", 3000 + i) for i in range(s.FANOUT_MIN_PORTS)]
    _, findings = s.detect_scans(_edges(rows))
    assert [f.shape for f in findings] == ["port fan-out"]
    _, findings = s.detect_scans(_edges(rows[:-1]))
    assert findings == []


def test_sweep_on_undeclared_port_is_flagged():
    rows = [_probe("a/x", f"b/p{i}", 22) for i in range(s.SWEEP_MIN_PEERS)]
    _, findings = s.detect_scans(_edges(rows))
    assert [f.shape for f in findings] == ["sweep"]
    _, findings = s.detect_scans(_edges(rows[:-1]))
    assert findings == []


def test_monitoring_scraper_with_keepalive_is_left_alone():
    # one long-lived connection per target, many targets, declared metrics ports
    rows = [
        _probe("mon/prometheus", f"ns{i}/app{i}", 9090 + i % 2, declared=True) for i in range(60)
    ]
    mask, findings = s.detect_scans(_edges(rows))
    assert not mask.any()
    assert findings == []


def test_dns_fanout_is_left_alone():
    rows = [
        _probe("a/x", f"kube-system/dns{i}", 53, proto=p) for i in range(30) for p in ("UDP", "TCP")
    ]
    mask, _ = s.detect_scans(_edges(rows))
    assert not mask.any()


def test_busy_external_destinations_are_not_a_scan():
    rows = [_probe("a/x", f"world:203.0.113.{i}", 443, conns=40, inside=False) for i in range(40)]
    mask, _ = s.detect_scans(_edges(rows))
    assert not mask.any()


def test_repeated_connections_are_not_probes():
    rows = [_probe("a/x", "b/db", 4000 + i, conns=50) for i in range(20)]
    mask, _ = s.detect_scans(_edges(rows))
    assert not mask.any()


@pytest.mark.parametrize(
    "name", ["PROBE_MAX_CONNECTIONS", "PORT_SCAN_MIN_PORTS", "FANOUT_MIN_PORTS", "SWEEP_MIN_PEERS"]
)
def test_thresholds_are_named_positive_integers(name):
    assert isinstance(getattr(s, name), int)
    assert getattr(s, name) > 0


def test_empty_input():
    mask, findings = s.detect_scans(_edges([]))
    assert mask.empty
    assert findings == []


def test_external_fanout_with_one_connection_each_is_flagged():
    rows = [
        _probe("shop/orders", f"world:198.51.100.{i}", 443, inside=False)
        for i in range(s.EXTERNAL_FANOUT_MIN_PEERS)
    ]
    _, findings = s.detect_scans(_edges(rows))
    assert [f.shape for f in findings] == ["external fan-out"]
    _, findings = s.detect_scans(_edges(rows[:-1]))
    assert findings == []


def test_external_fan_out_flags_only_the_external_probes():
    """A beaconing pod keeps its rare but ordinary in-cluster edges."""
    rows = [
        {
            "src_key": "t/worker",
            "dst_key": f"world:203.0.113.{i}",
            "dst_in_cluster": False,
            "port": 443,
            "protocol": "TCP",
            "connections": 1,
            "declared": False,
        }
        for i in range(10)
    ]
    rows.append(
        {
            "src_key": "t/worker",
            "dst_key": "platform/kafka",
            "dst_in_cluster": True,
            "port": 9092,
            "protocol": "TCP",
            "connections": 2,
            "declared": True,
        }
    )
    mask, findings = s.detect_scans(pd.DataFrame(rows))
    assert [f.shape for f in findings] == ["external fan-out"]
    assert mask.tolist() == [True] * 10 + [False]
