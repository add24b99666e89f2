"""netpol tighten: pruning, narrowing, widening, kept items, guarantees, output and CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.model import (
    IPBlock,
    LabelRequirement,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.policy_io.policy_yaml import dump_policy_yaml, load_policies
from recommender.semantics import compile_policies, endpoint_for_ip, endpoint_for_pod
from recommender.tighten import (
    TightenOptions,
    build_report,
    render_markdown,
    render_tighten_tree,
    tighten,
)
from tests.conftest import GOLDEN
from tests.fixtures.tighten.cluster import CURRENT, frame, inventory, observation, week

INV = inventory()
NAME = "kubernetes.io/metadata.name"


def _current() -> list[NetworkPolicy]:
    return load_policies([str(CURRENT)]).policies


def _run(obs=None, policies=None, **options):
    options.setdefault("semantic_diff", False)
    return tighten(
        policies or _current(), week() if obs is None else obs, INV, TightenOptions(**options)
    )


def _by_key(policies) -> dict[str, NetworkPolicy]:
    return {p.key: p for p in policies}


def _pod(name: str):
    return endpoint_for_pod(next(p for p in INV.pods if p.name == name), INV)


def _allowed(policies, src, dst, port, proto="TCP") -> bool:
    return compile_policies(policies, INV).decide(src, dst, port, proto).is_allowed


@pytest.fixture(scope="module")
def result():
    return _run()


def test_unused_rule_is_pruned_but_isolation_stays(result):
    legacy = _by_key(result.proposed)["data/legacy-import"]
    assert legacy.ingress == ()
    assert legacy.policy_types == ("Ingress",)
    assert any(
        n.kind == "keeps-isolation" and n.policy == "data/legacy-import" for n in result.notes
    )
    # Still isolated: batch -> cache on the pruned port is denied, as before.
    assert not _allowed(result.proposed, _pod("job-0"), _pod("cache-0"), 1234)
    frontend = _by_key(result.proposed)["shop/frontend"]
    assert len(frontend.egress or ()) == 2  # the app=legacy rule is gone
    assert {c.kind for c in result.changes if c.rule == "shop/frontend#egress[2]"} == {"prune-rule"}


def test_namespace_wide_peer_narrowed_to_talking_workload(result):
    rule = _by_key(result.proposed)["shop/frontend"].egress[0]
    assert rule.peers == (
        Peer(
            pod_selector=LabelSelector(match_labels=(("app", "cart"),)),
            namespace_selector=LabelSelector(match_labels=((NAME, "shop"),)),
        ),
    )
    assert rule.ports == (PolicyPort("TCP", 8080),)  # the 8000-9000 range, narrowed


def test_pod_selector_all_peer_and_protocol_only_port_narrowed(result):
    rule = _by_key(result.proposed)["shop/cart"].ingress[0]
    assert rule.peers == (Peer(pod_selector=LabelSelector(match_labels=(("app", "frontend"),))),)
    assert rule.ports == (PolicyPort("TCP", 8080),)


def test_namespace_selector_narrowed_to_namespace_when_all_its_workloads_talk(result):
    rule = _by_key(result.proposed)["shop/cart"].egress[0]
    # team=data matched data and batch; only data talks, and all of data does.
    assert rule.peers == (
        Peer(namespace_selector=LabelSelector(match_labels=((NAME, "data"), ("team", "data")))),
    )
    assert rule.ports == (PolicyPort("TCP", 5432), PolicyPort("TCP", 6379))  # UDP 9999 pruned


def test_smallest_exact_selector_keeps_the_namespace_selector(result):
    rule = _by_key(result.proposed)["data/db"].ingress[0]
    # cart and admin talk (admin's flow is a widening candidate): tier=api selects exactly
    # them, but the selector names their applications (docs/quality.md, future workloads).
    names = LabelRequirement("app", "In", ("admin", "cart"))
    assert rule.peers == (
        Peer(
            pod_selector=LabelSelector(match_expressions=(names,)),
            namespace_selector=LabelSelector(match_labels=(("team", "web"),)),
        ),
    )


def test_ipblock_narrowed_to_observed_addresses_budget_zero(result):
    frontend = _by_key(result.proposed)["shop/frontend"]
    assert [p.ip_block for p in frontend.ingress[0].peers] == [
        IPBlock("203.0.113.5/32"),
        IPBlock("203.0.113.9/32"),
    ]
    assert [p.ip_block for p in frontend.egress[1].peers] == [
        IPBlock("198.51.100.7/32"),
        IPBlock("198.51.100.8/32"),
    ]


def test_ipblock_budget_merges_and_carries_the_except_inside():
    res = _run(cidr_budget=16)
    egress = _by_key(res.proposed)["shop/frontend"].egress[1]
    # 198.51.100.7 and .8 share 198.51.100.0/28 (14 extra addresses); the original
    # except 198.51.100.9/32 lies inside it and must stay excluded.
    assert [p.ip_block for p in egress.peers] == [IPBlock("198.51.100.0/28", ("198.51.100.9/32",))]
    ep = endpoint_for_ip("198.51.100.9", INV)
    assert not _allowed(res.proposed, _pod("frontend-0"), ep, 443)
    assert _allowed(res.proposed, _pod("frontend-0"), endpoint_for_ip("198.51.100.3", INV), 443)


def test_public_ingress_is_not_narrowed():
    rows = [observation(f"203.0.113.{i}", "frontend", 8080) for i in range(1, 17)]
    res = _run(frame(rows))
    peers = _by_key(res.proposed)["shop/frontend"].ingress[0].peers
    assert peers == (Peer(ip_block=IPBlock("0.0.0.0/0", ("10.0.0.0/8",))),)
    assert any(n.kind == "public-ingress" for n in res.notes)
    narrowed = _run(frame(rows), public_ingress_min_sources=0)
    assert len(_by_key(narrowed.proposed)["shop/frontend"].ingress[0].peers or ()) == 16


def test_ipblock_matching_pod_ips_is_kept():
    policy = NetworkPolicy(
        "shop",
        "frontend-pods",
        LabelSelector((("app", "frontend"),)),
        ("Egress",),
        egress=(Rule((Peer(ip_block=IPBlock("10.0.0.0/8")),), (PolicyPort("TCP", 8080),)),),
    )
    res = _run(frame([observation("frontend", "cart", 8080)]), policies=[*_current(), policy])
    assert _by_key(res.proposed)["shop/frontend-pods"] == policy
    assert any(n.kind == "pod-ipblock" for n in res.notes)


def test_dns_allowance_kept_and_reported_unless_asked(result):
    current, proposed = _by_key(_current()), _by_key(result.proposed)
    assert proposed["data/allow-dns"] == current["data/allow-dns"]
    assert proposed["shop/allow-dns"] == current["shop/allow-dns"]  # TCP 53 unused: kept
    assert [n.rule for n in result.notes if n.kind == "unused-dns"] == ["data/allow-dns#egress[0]"]
    pruned = _by_key(_run(prune_dns=True).proposed)
    assert pruned["data/allow-dns"].egress == ()
    assert pruned["data/allow-dns"].policy_types == ("Egress",)
    assert pruned["shop/allow-dns"].egress[0].ports == (PolicyPort("UDP", 53),)


def test_widening_is_listed_with_evidence_but_not_applied(result):
    flows = sorted(
        (w.judged.observed.src, w.judged.observed.dst, w.direction) for w in result.widenings
    )
    assert flows == [
        ("shop/deployment/admin", "data/statefulset/db", "egress"),
        ("shop/deployment/cart", "data/statefulset/cache", "ingress"),
    ]
    assert not any(p.name.endswith("-widened") for p in result.proposed)
    assert not _allowed(result.proposed, _pod("admin-0"), _pod("db-0"), 5432)
    # The policy-dropped attempt is not a candidate and stays denied.
    assert not _allowed(result.proposed, _pod("frontend-0"), _pod("db-0"), 5432)
    md = render_markdown(build_report(result, {}))
    assert "10 flowed (10 audit)" in md
    assert "proposed only; pass --accept-widening" in md


def test_accept_widening_applies_exactly_the_proposals():
    res = _run(accept_widening=True)
    widened = _by_key(res.proposed)
    admin = widened["shop/admin-widened"]
    assert admin.pod_selector == LabelSelector(match_labels=(("app", "admin"),))
    assert admin.policy_types == ("Egress",)
    assert admin.egress == (
        Rule(
            (
                Peer(
                    pod_selector=LabelSelector((("app", "db"),)),
                    namespace_selector=LabelSelector(((NAME, "data"),)),
                ),
            ),
            (PolicyPort("TCP", 5432),),
        ),
    )
    assert widened["data/cache-widened"].policy_types == ("Ingress",)
    assert _allowed(res.proposed, _pod("admin-0"), _pod("db-0"), 5432)
    assert _allowed(res.proposed, _pod("cart-0"), _pod("cache-0"), 6379)
    assert not _allowed(res.proposed, _pod("frontend-0"), _pod("db-0"), 5432)
    assert not _allowed(res.proposed, _pod("admin-0"), _pod("db-0"), 6379)
    assert res.check.ok
    assert res.check.widened == 2


def test_scan_shaped_and_node_cross_pairs_are_not_widening_evidence():
    rows = [observation("admin", "cart", p, connections=1) for p in range(9000, 9010)]
    # node n1 probing frontend: its own replica is exempt, the one on n2 is not the target.
    rows.append(observation("192.168.0.1", "frontend", 9999, src_kind="host"))
    res = _run(frame(rows))
    assert res.widenings == []


def test_unknown_end_is_never_evidence():
    rows = [
        observation("frontend", "cart", 8080),
        observation("10.0.1.99", "cart", 7777, src_kind="unknown"),
    ]
    res = _run(frame(rows))
    assert res.totals()["unknown_connections"] == 10
    assert res.widenings == []


def _ends(row, side):
    if row[f"{side}_kind"] == "pod":
        owner = row[f"{side}_workload"].split("/")[1]
        return [endpoint_for_pod(p, INV) for p in INV.pods if p.owner_name == owner]
    return [endpoint_for_ip(row[f"{side}_ip"], INV)]


def _observed_cases():
    return [
        (s, d, row["port"], row["protocol"])
        for row in week().to_dict(orient="records")
        for s in _ends(row, "src")
        for d in _ends(row, "dst")
    ]


def test_guarantees_on_the_evidence(result):
    before = compile_policies(_current(), INV)
    after = compile_policies(result.proposed, INV)
    cases = _observed_cases()
    verdicts = [(before.decide(*c).verdict, after.decide(*c).verdict) for c in cases]
    assert ("allowed", "allowed") in verdicts
    assert ("denied", "denied") in verdicts
    assert all(b == "allowed" for a, b in verdicts if a == "allowed")
    assert all(b == "denied" for a, b in verdicts if a == "denied")


def test_semantic_diff_never_newly_allows():
    res = _run(semantic_diff=True)
    assert res.diff is not None
    assert res.diff.counts()["newly_allowed"] == 0
    assert res.diff.counts()["newly_denied"] > 0
    widened = _run(semantic_diff=True, accept_widening=True)
    allowed = {(c.src, c.dst, c.port) for c in widened.diff.changes if c.change == "allowed"}
    assert allowed == {
        ("shop/deployment/admin", "data/statefulset/db", 5432),
        ("shop/deployment/cart", "data/statefulset/cache", 6379),
    }


@pytest.mark.parametrize("widen", [False, True], ids=["plain", "accept-widening"])
def test_second_run_changes_nothing(widen):
    first = _run(accept_widening=widen)
    second = _run(policies=first.proposed, accept_widening=widen)
    assert second.changes == []
    assert [dump_policy_yaml(p) for p in second.proposed] == [
        dump_policy_yaml(p) for p in first.proposed
    ]


def test_empty_window_is_an_input_error_not_a_prune_everything():
    from recommender.errors import InputError

    with pytest.raises(InputError, match="no observations"):
        _run(frame([]))


def test_duplicate_policy_is_an_input_error():
    from recommender.errors import InputError

    dup = replace(_current()[0], source="other.yaml#1")
    with pytest.raises(InputError, match="defined twice"):
        _run(policies=[*_current(), dup])


# ---------------------------------------------------------------------------
# Output tree, golden files, CLI
# ---------------------------------------------------------------------------


def test_tree_golden(update_golden):
    res = _run(semantic_diff=True, accept_widening=True)
    report = build_report(res, {"policies": ["current.yaml"]})
    files = render_tighten_tree(res.proposed, render_markdown(report))
    files["TIGHTEN.json"] = json.dumps(report, indent=2, sort_keys=True) + "\n"
    root = GOLDEN / "tighten" / "fixture"
    if update_golden:
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    on_disk = {
        str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
    }
    assert on_disk == files


def _write_inputs(tmp: Path) -> tuple[str, str]:
    """The fixture cluster as a kubectl List, and the week as a store-less observation file."""
    from tests.fixtures.tighten.cluster import NAMESPACES, WORKLOADS

    items = [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": n, "labels": {NAME: n, **extra}},
        }
        for n, extra in NAMESPACES.items()
    ]
    for ns, kind, owner, labels, replicas, ports in WORKLOADS.values():
        for i, (ip, node) in enumerate(replicas):
            items.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": f"{owner}-{i}",
                        "namespace": ns,
                        "labels": labels,
                        "ownerReferences": [{"kind": kind, "name": owner, "controller": True}],
                    },
                    "spec": {
                        "nodeName": node,
                        "containers": [
                            {
                                "name": "c",
                                "ports": [
                                    {
                                        "containerPort": p.port,
                                        "protocol": p.protocol,
                                        "name": p.name,
                                    }
                                    for p in ports
                                ],
                            }
                        ],
                    },
                    "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
                }
            )
    inv = tmp / "inventory.json"
    inv.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return str(inv), str(CURRENT)


def test_cli_bad_input_exits_2(tmp_path, capsys):
    inv, current = _write_inputs(tmp_path)
    flows = tmp_path / "none.jsonl"
    code = main(
        [
            "tighten",
            "--policies",
            current,
            "--inventory",
            inv,
            "--flows",
            str(flows),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "none.jsonl" in capsys.readouterr().err
    code = main(
        [
            "tighten",
            "--policies",
            current,
            "--inventory",
            inv,
            "--flows",
            str(flows),
            "--since",
            "7d",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "--since needs --store" in capsys.readouterr().err
    (tmp_path / "exists").mkdir()
    code = main(
        [
            "tighten",
            "--policies",
            current,
            "--inventory",
            inv,
            "--flows",
            str(flows),
            "--out",
            str(tmp_path / "exists"),
        ]
    )
    assert code == 2
    assert "--force" in capsys.readouterr().err


def test_cli_writes_the_recommend_layout(tmp_path, small_sim):
    out, js = tmp_path / "out", tmp_path / "t.json"
    args = [
        "tighten",
        "--policies",
        str(CURRENT),
        "--inventory",
        str(small_sim / "inventory.json"),
        "--flows",
        str(small_sim / "flows-train.jsonl.gz"),
        "--out",
        str(out),
        "--json",
        str(js),
    ]
    assert main(args) == 0
    assert (out / "kustomization.yaml").read_text().count("- ") == 2  # data, shop
    assert (out / "shop" / "kustomization.yaml").is_file()
    assert (out / "TIGHTEN.md").read_text().startswith("# netpol tighten")
    report = json.loads(js.read_text())
    assert report["self_check"]["ok"] is True
    assert main(args) == 2  # the output exists: refused before any work without --force


# ---------------------------------------------------------------------------
# The bundled sample: a hand-broadened recommendation, tightened back
# ---------------------------------------------------------------------------

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"
BROADENED = Path(__file__).parent / "fixtures" / "tighten" / "webshop-broadened.yaml"


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    """netpol tighten on the sample, then again on its own output (same evidence)."""
    tmp = tmp_path_factory.mktemp("tighten-sample")
    common = [
        "--inventory",
        str(SAMPLE / "inventory.json"),
        "--flows",
        str(SAMPLE / "flows-train.jsonl.gz"),
    ]
    assert (
        main(
            [
                "tighten",
                "--policies",
                str(BROADENED),
                *common,
                "--out",
                str(tmp / "one"),
                "--json",
                str(tmp / "one.json"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "tighten",
                "--policies",
                str(tmp / "one"),
                *common,
                "--out",
                str(tmp / "two"),
                "--json",
                str(tmp / "two.json"),
            ]
        )
        == 0
    )
    return tmp


@pytest.mark.slow
def test_sample_broadened_set_is_tightened_back(sample_run):
    from recommender.semantics.reachability import allowed_triples, workload_universe

    report = json.loads((sample_run / "one.json").read_text())
    kinds = {c["kind"] for c in report["changes"]}
    assert {"narrow-peer", "narrow-ipblock", "narrow-ports"} <= kinds
    assert report["self_check"]["ok"] is True
    assert report["semantic_diff"]["newly_allowed"] == 0
    assert report["semantic_diff"]["newly_denied"] > 0
    inv = read_inventory([str(SAMPLE / "inventory.json")])
    universe = workload_universe(inv)
    broad = allowed_triples(
        compile_policies(load_policies([str(BROADENED)]).policies, inv), universe
    )
    tight = allowed_triples(
        compile_policies(load_policies([str(sample_run / "one")]).policies, inv), universe
    )
    assert tight < broad
    assert len(tight) <= len(broad) * 2 // 3


@pytest.mark.slow
def test_sample_second_run_is_byte_identical(sample_run):
    one = {
        str(p.relative_to(sample_run / "one")): p.read_bytes()
        for p in (sample_run / "one").rglob("*.yaml")
    }
    two = {
        str(p.relative_to(sample_run / "two")): p.read_bytes()
        for p in (sample_run / "two").rglob("*.yaml")
    }
    assert one == two
    assert json.loads((sample_run / "two.json").read_text())["changes"] == []


def test_cli_store_window_decides_what_is_unused(tmp_path):
    from recommender.observe.engines.base import IngestStats
    from recommender.observe.store import append_observations

    inv, current = _write_inputs(tmp_path)
    store = str(tmp_path / "obs.duckdb")
    recent = week()
    recent["bucket"] = pd.Timestamp("2026-11-08 23:00:00")
    old = frame([observation("job", "cache", 1234)])  # uses data/legacy-import, a month ago
    old["first_seen"] = old["last_seen"] = pd.Timestamp("2026-10-01 12:00:00")
    old["bucket"] = pd.Timestamp("2026-10-01 12:00:00")
    append_observations(store, pd.concat([old, recent], ignore_index=True), IngestStats())
    base = ["tighten", "--policies", current, "--inventory", inv, "--store", store]
    assert main([*base, "--out", str(tmp_path / "all"), "--json", str(tmp_path / "all.json")]) == 0
    assert (
        main(
            [
                *base,
                "--since",
                "7d",
                "--out",
                str(tmp_path / "week"),
                "--json",
                str(tmp_path / "week.json"),
            ]
        )
        == 0
    )
    pruned = {
        c["rule"]
        for c in json.loads((tmp_path / "week.json").read_text())["changes"]
        if c["kind"] == "prune-rule"
    }
    kept = {
        c["rule"]
        for c in json.loads((tmp_path / "all.json").read_text())["changes"]
        if c["kind"] == "prune-rule"
    }
    assert "data/legacy-import#ingress[0]" in pruned
    assert "data/legacy-import#ingress[0]" not in kept
    assert json.loads((tmp_path / "week.json").read_text())["inputs"]["since"] == "7d"
