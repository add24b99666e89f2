"""netpol diff: semantic equivalence, changes with responsible policies, pruning exactness, CLI."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.cli.parser import main
from recommender.diff import build_universe, compile_pair, diff_policies, port_probes
from recommender.diff.universe import address_probes
from recommender.inventory.files import read_inventory
from recommender.model import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.policy_io.policy_yaml import load_policies
from recommender.report.diff import build_report, render_markdown, render_text
from tests.conftest import FIXTURES, GOLDEN

DIFF = FIXTURES / "diff"
INVENTORY = FIXTURES / "lint" / "inventory.yaml"


@pytest.fixture(scope="module")
def inv():
    return read_inventory([INVENTORY])


def _load(name: str) -> list[NetworkPolicy]:
    return load_policies([str(DIFF / name)]).policies


# ---------------------------------------------------------------------------
# Fixtures: a re-laid-out copy is equivalent; a real change is reported exactly
# ---------------------------------------------------------------------------


def test_relaid_renamed_reordered_copy_is_equivalent(inv) -> None:
    old, new = _load("old"), _load("new-relaid")
    assert {p.name for p in old}.isdisjoint({p.name for p in new})
    result = diff_policies(old, new, inv)
    assert result.equivalent
    assert result.changes == []
    # Canonical side signatures match except web's ingress, written with the
    # named port "http" in one set and 8080 in the other: only pairs into web
    # are evaluated, and the engine finds them equal.
    assert result.changed_sides == {"egress": 0, "ingress": 1}
    assert result.pairs_evaluated == 5


def test_changes_with_responsible_policies(inv) -> None:
    result = diff_policies(_load("old"), _load("new-changed"), inv)
    assert not result.equivalent
    got = [
        (
            c.change,
            c.src,
            c.dst,
            c.protocol,
            c.port,
            c.port_last,
            c.sides,
            c.old_policies,
            c.new_policies,
            c.new_rules,
        )
        for c in result.changes
    ]
    assert got == [
        (
            "allowed",
            "shop/deployment/web",
            "shop/pod/db-1",
            "TCP",
            5432,
            5432,
            ("egress", "ingress"),
            ("shop/allow-dns", "shop/db", "shop/default-deny", "shop/web"),
            ("shop/db", "shop/web"),
            ("shop/db#ingress[0]", "shop/web#egress[1]"),
        ),
        (
            "denied",
            "other/pod/client-1",
            "shop/deployment/web",
            "TCP",
            8080,
            8080,
            ("ingress",),
            ("shop/web",),
            ("shop/default-deny", "shop/web"),
            (),
        ),
    ]
    # api -> db widened to 5432-5440 on egress only: db still admits 5432 alone.
    assert not any(c.src == "shop/pod/api-1" for c in result.changes)


def test_default_deny_covered_by_other_policies_is_equivalent(inv) -> None:
    old = _load("old")
    # allow-dns isolates every shop pod for egress and web/api/db isolate themselves
    # for ingress: today the default-deny changes no verdict.
    assert diff_policies(old, [p for p in old if p.name != "default-deny"], inv).equivalent


def test_removing_default_deny_and_dns_opens_port_ranges(inv) -> None:
    old = _load("old")
    new = [p for p in old if p.name not in ("default-deny", "allow-dns")]
    result = diff_policies(old, new, inv)
    # web and api keep their own egress policies, which have no DNS rule: they lose DNS.
    assert {(c.src, c.dst, c.port, c.protocol) for c in result.changes if c.change == "denied"} == {
        (f"shop/{w}", "kube-system/pod/coredns-1", 53, "UDP")
        for w in ("deployment/web", "pod/api-1")
    }
    rows = {
        (r["src"], r["dst"]): r
        for r in build_report(result, _inputs())["changes"]
        if r["change"] == "allowed"
    }
    # db had no egress rule: everything opens, merged into whole ranges.
    world = rows[("shop/pod/db-1", "world:0.0.0.0/0")]
    assert world["ports"] == ["TCP 1-65535", "UDP 1-65535", "SCTP 1-65535"]
    assert world["old_policies"] == ["shop/allow-dns", "shop/default-deny"]
    # DNS (53/UDP) to coredns was allowed before: everything else opens.
    dns = rows[("shop/pod/db-1", "kube-system/pod/coredns-1")]
    assert dns["ports"] == ["TCP 1-65535", "UDP 1-52", "UDP 54-65535", "SCTP 1-65535"]
    # Nothing opens for api and web.
    assert {src for src, _ in rows} == {"shop/pod/db-1"}


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

_APPS = ("web", "api", "db", "client", "nothing")
_SEL = st.one_of(
    st.just(LabelSelector()),
    st.sampled_from(_APPS).map(lambda a: LabelSelector(match_labels=(("app", a),))),
)
_NS_SEL = st.sampled_from(("shop", "other", "kube-system")).map(
    lambda n: LabelSelector(match_labels=(("kubernetes.io/metadata.name", n),))
)
_PEER = st.one_of(
    _SEL.map(lambda s: Peer(pod_selector=s)),
    st.builds(lambda n, s: Peer(namespace_selector=n, pod_selector=s), _NS_SEL, _SEL),
    st.sampled_from(
        [
            IPBlock("10.1.0.0/24", ("10.1.0.10/32",)),
            IPBlock("0.0.0.0/0"),
            IPBlock("10.1.0.11/32"),
            IPBlock("192.168.0.0/16"),
        ]
    ).map(lambda b: Peer(ip_block=b)),
)
_PORT = st.sampled_from(
    [
        PolicyPort("TCP", 8080),
        PolicyPort("TCP", 9000),
        PolicyPort("TCP", 5000, 6000),
        PolicyPort("TCP", "http"),
        PolicyPort("UDP", 53),
        PolicyPort("UDP", None),
    ]
)
_RULE = st.builds(
    Rule,
    st.one_of(st.none(), st.lists(_PEER, max_size=3).map(tuple)),
    st.one_of(st.none(), st.lists(_PORT, max_size=2).map(tuple)),
)


@st.composite
def _policies(draw: st.DrawFn) -> list[NetworkPolicy]:
    out = []
    for i in range(draw(st.integers(0, 4))):
        types = draw(st.sampled_from([("Ingress",), ("Egress",), ("Ingress", "Egress")]))
        ingress = tuple(draw(st.lists(_RULE, max_size=2))) if "Ingress" in types else None
        egress = tuple(draw(st.lists(_RULE, max_size=2))) if "Egress" in types else None
        ns = draw(st.sampled_from(("shop", "other")))
        out.append(NetworkPolicy(ns, f"p{i}", draw(_SEL), types, ingress, egress))
    return out


def _shuffled_copy(policies: list[NetworkPolicy], seed: int) -> list[NetworkPolicy]:
    rng = random.Random(seed)

    def mix(items: Any) -> Any:
        if items is None:
            return None
        return tuple(rng.sample(list(items), len(items)))

    def rules(rs: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        out = mix(tuple(replace(r, peers=mix(r.peers), ports=mix(r.ports)) for r in rs or ()))
        return out if rs is not None else None

    copy = [
        replace(
            p,
            name=f"renamed-{rng.randrange(10**6)}-{i}",
            ingress=rules(p.ingress),
            egress=rules(p.egress),
        )
        for i, p in enumerate(policies)
    ]
    rng.shuffle(copy)
    return copy


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_policies(), st.integers(0, 2**32 - 1))
def test_shuffled_renamed_copy_is_always_equivalent(inv, policies, seed) -> None:
    result = diff_policies(policies, _shuffled_copy(policies, seed), inv)
    assert result.equivalent


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_policies(), _policies())
def test_pruned_diff_equals_brute_force(inv, old, new) -> None:
    """Pruning and per-pair port regions lose nothing: compare with every pair x every probe."""
    uni = build_universe(old, new, inv)
    result = diff_policies(old, new, inv, uni)
    old_ps, new_ps = compile_pair(old, new, inv)
    every = [*uni.workloads, *uni.externals]
    brute = {
        (s.key, d.key, proto, port)
        for s in every
        for d in every
        for port, proto in uni.ports
        if old_ps.decide(s.endpoint, d.endpoint, port, proto).is_allowed
        != new_ps.decide(s.endpoint, d.endpoint, port, proto).is_allowed
    }
    pruned = {
        (c.src, c.dst, c.protocol, port)
        for c in result.changes
        for port, proto in uni.ports
        if proto == c.protocol and c.port <= port <= c.port_last
    }
    assert pruned == brute
    assert result.equivalent == (not brute)


def test_probes_cut_at_every_boundary() -> None:
    rule = Rule(
        peers=(Peer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))),),
        ports=(PolicyPort("TCP", 80, 90),),
    )
    p = NetworkPolicy("ns", "p", LabelSelector(), ("Egress",), egress=(rule,))
    assert [r for _, r in address_probes([p])] == [
        "0.0.0.0-9.255.255.255",
        "10.0.0.0/16",
        "10.1.0.0/16",
        "10.2.0.0-10.255.255.255",
        "11.0.0.0-255.255.255.255",
    ]
    assert [port for port, proto in port_probes([p]) if proto == "TCP"] == [1, 80, 91]


# ---------------------------------------------------------------------------
# Observed flows: the verdict changes come from ShadowRun
# ---------------------------------------------------------------------------


def test_observed_flows_change_verdict(
    small_sim: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "none.yaml"
    empty.write_text("# no policies\n")
    out = tmp_path / "diff.json"
    code = main(
        [
            "diff",
            str(empty),
            str(FIXTURES / "shadow" / "data-default-deny.yaml"),
            "--inventory",
            str(small_sim / "inventory-fresh.json"),
            "--flows",
            str(small_sim / "flows-fresh.jsonl.gz"),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    flows = report["observed_flows"]
    assert flows["totals"]["records"] > 0
    assert flows["changes"]
    for row in flows["changes"]:
        assert (row["old"], row["new"]) == ("allowed", "denied")
        # Only the data namespace became isolated.
        assert row["dst_workload"].startswith("data/") or row["src_workload"].startswith("data/")
    assert report["universe"]["observed_ports"] > 0
    assert report["summary"]["newly_denied"] > 0
    assert "observed edges change verdict" in capsys.readouterr().out


# ---------------------------------------------------------------------------
# Goldens and CLI
# ---------------------------------------------------------------------------


def _inputs() -> dict[str, object]:
    return {
        "old": ["tests/fixtures/diff/old"],
        "new": ["tests/fixtures/diff/new-changed"],
        "old_policies": 5,
        "new_policies": 5,
        "inventory": ["tests/fixtures/lint/inventory.yaml"],
    }


def _check_golden(path: Path, text: str, update: bool) -> None:
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_golden_outputs(inv, update_golden: bool) -> None:
    report = build_report(diff_policies(_load("old"), _load("new-changed"), inv), _inputs())
    _check_golden(GOLDEN / "diff" / "changed.txt", render_text(report), update_golden)
    _check_golden(GOLDEN / "diff" / "changed.md", render_markdown(report), update_golden)
    _check_golden(
        GOLDEN / "diff" / "changed.json", json.dumps(report, indent=2) + "\n", update_golden
    )


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["diff", str(DIFF / "old"), "--inventory", str(INVENTORY)]
    assert main([*base[:2], str(DIFF / "new-relaid"), *base[2:], "--fail-on-change"]) == 0
    assert "EQUIVALENT" in capsys.readouterr().out
    md = tmp_path / "diff.md"
    assert main([*base[:2], str(DIFF / "new-changed"), *base[2:], "--markdown", str(md)]) == 0
    assert md.read_text().startswith("## NetworkPolicy semantic diff")
    assert main([*base[:2], str(DIFF / "new-changed"), *base[2:], "--fail-on-change"]) == 3
    assert "not equivalent (1 newly allowed, 1 newly denied)" in capsys.readouterr().err
    assert main([*base[:2], str(DIFF / "new-changed"), *base[2:], "--markdown", str(md)]) == 2


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["diff", str(tmp_path / "nope"), str(DIFF / "old"), "--inventory", str(INVENTORY)])
        == 2
    )
    assert "nope: no such file or directory" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (DIFF / "old" / "shop.yaml")
        .read_text()
        .replace("port: 5432}]\n---", "port: 99999}]\n---", 1)
    )
    assert main(["diff", str(DIFF / "old"), str(bad), "--inventory", str(INVENTORY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert (
        f"error: {bad}:47: document 4: spec.egress[0].ports[0].port: 99999 is not in 1-65535" in err
    )
