"""netpol tighten on CiliumNetworkPolicy input, alone and mixed with the other kinds.

The cluster and observations are tests/fixtures/tighten/cluster.py; the policies
below are written by hand, and so is every expected rule id: ``<ns>/<name>#<section>[i]``
counts the rules of the YAML from 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from recommender.cli.parser import main
from recommender.flows.lost_events import LostEvent
from recommender.policy_io.policy_yaml import load_policies
from recommender.semantics import endpoint_for_pod
from recommender.semantics.cilium import CiliumPolicy, parse_cilium_policy
from recommender.semantics.cnp import compile_all_kinds
from recommender.semantics.cnp_rules import ClusterPolicy, load_cluster_policy
from recommender.tighten import TightenHistory, TightenOptions
from recommender.tighten.cilium import observed_answers
from recommender.tighten.kinds import KindsTightening, tighten_kinds
from recommender.tighten.tree import add_written_through
from tests.conftest import FIXTURES
from tests.fixtures.tighten.cluster import CURRENT, frame, inventory, observation

SAMPLE = FIXTURES.parent.parent / "data" / "sample"
INV = inventory()

FRONTEND = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: frontend-cnp, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: frontend}}
  egress:
    - toEndpoints: [{matchLabels: {app: cart}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - toEndpoints: [{matchLabels: {app: admin}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
    - toEndpoints:
        - matchLabels: {k8s-app: kube-dns, k8s:io.kubernetes.pod.namespace: kube-system}
      toPorts:
        - ports: [{port: "53", protocol: UDP}]
          rules: {dns: [{matchPattern: "*"}]}
"""

CART = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cart-cnp, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: cart}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: frontend}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - fromEndpoints: [{matchLabels: {app: admin}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
  egress:
    - toEndpoints: [{matchLabels: {app: db, k8s:io.kubernetes.pod.namespace: data}}]
      toPorts: [{ports: [{port: "5432", protocol: TCP}]}]
    - toFQDNs: [{matchName: other.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
    - toEndpoints:
        - matchLabels: {k8s-app: kube-dns, k8s:io.kubernetes.pod.namespace: kube-system}
      toPorts:
        - ports: [{port: "53", protocol: UDP}]
          rules: {dns: [{matchPattern: "*"}]}
"""

CACHE = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cache-cnp, namespace: data}
spec:
  endpointSelector: {matchLabels: {app: cache}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: job, k8s:io.kubernetes.pod.namespace: batch}}]
      toPorts: [{ports: [{port: "6379", protocol: TCP}]}]
"""

CLUSTER = """apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {name: dns-for-all}
spec:
  tier: Admin
  priority: 10
  subject: {namespaces: {}}
  egress:
    - action: Accept
      to: [{namespaces: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
      protocols: [{udp: {destinationPort: {number: 53}}}]
"""


def _cilium(*texts: str) -> list[CiliumPolicy]:
    return [q for t in texts for q in parse_cilium_policy(yaml.safe_load(t), "test.yaml")]


def _with_names(row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {**row, "dst_names": names}


def _window() -> pd.DataFrame:
    """What flowed: frontend -> cart, frontend -> api.example.com, DNS, cart -> db and cache."""
    return frame(
        [
            observation("frontend", "cart", 8080),
            _with_names(observation("frontend", "198.51.100.7", 443), ["api.example.com"]),
            observation("frontend", "coredns", 53, "UDP"),
            observation("cart", "db", 5432),
            observation("cart", "cache", 6379),  # flowed; cache's ingress denies it
        ]
    )


def _run(obs: pd.DataFrame | None = None, **kwargs: Any) -> KindsTightening:
    return tighten_kinds(
        [], _cilium(FRONTEND, CART, CACHE), [], _window() if obs is None else obs, INV, **kwargs
    )


@pytest.fixture(scope="module")
def run() -> KindsTightening:
    return _run()


def _objects(run: KindsTightening) -> dict[str, dict[str, Any]]:
    return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in run.cilium_objects}


def test_unused_to_endpoints_rule_is_pruned(run):
    pruned = sorted(c.rule for c in run.result.changes if c.kind == "prune-rule")
    # frontend -> admin and admin -> cart never happened; cache's ingress from job neither.
    assert pruned == [
        "data/cache-cnp#ingress[0]",
        "shop/cart-cnp#ingress[1]",
        "shop/frontend-cnp#egress[1]",
    ]
    egress = _objects(run)["shop/frontend-cnp"]["spec"]["egress"]
    assert [r.get("toEndpoints") for r in egress][:1] == [[{"matchLabels": {"app": "cart"}}]]
    assert {"matchLabels": {"app": "admin"}} not in [
        e for r in egress for e in r.get("toEndpoints") or ()
    ]
    assert len(egress) == 3


def test_used_rules_are_kept_with_their_hits(run):
    hits = run.cilium.hits if run.cilium else {}
    assert hits["shop/frontend-cnp#egress[0]"] == 10  # frontend -> cart, 10 connections
    assert hits["shop/frontend-cnp#egress[2]"] == 10  # toFQDNs api.example.com, by its DNS answer
    assert hits["shop/cart-cnp#ingress[0]"] == 10
    assert hits["shop/cart-cnp#egress[0]"] == 10  # cart -> db
    changed = {c.rule for c in run.result.changes}
    assert not changed & {
        "shop/frontend-cnp#egress[0]",
        "shop/frontend-cnp#egress[2]",
        "shop/cart-cnp#egress[0]",
    }


def test_unused_dns_and_fqdn_without_dns_answers_are_kept_with_a_reason(run):
    notes = {(n.kind, n.rule): n.text for n in run.result.notes}
    assert ("unused-dns", "shop/cart-cnp#egress[2]") in notes
    why = notes[("fqdn-no-dns-evidence", "shop/cart-cnp#egress[1]")]
    assert "other.example.com" in why
    assert "proves nothing" in why
    assert "shop/cart-cnp#egress[1]" not in {c.rule for c in run.result.changes}


def test_an_emptied_section_keeps_default_deny(run):
    cache = _objects(run)["data/cache-cnp"]
    assert cache["spec"]["ingress"] == [{}]
    assert ("keeps-isolation", "data/cache-cnp") in {(n.kind, n.policy) for n in run.result.notes}
    after = compile_all_kinds([], run.cilium.proposed if run.cilium else [], [], INV)
    job = [p for p in INV.pods if p.name == "job-0"][0]
    cache_pod = [p for p in INV.pods if p.name == "cache-0"][0]
    decision = after.decide(
        endpoint_for_pod(job, INV), endpoint_for_pod(cache_pod, INV), 6379, "TCP"
    )
    assert decision.verdict == "denied"
    assert decision.denied_by == "ingress"


def test_proof_and_semantic_diff(run):
    check, diff = run.result.check, run.result.diff
    assert check.ok, check.violations
    # allowed before and after: frontend->cart, ->api, ->dns, cart->db (one case per pod pair)
    assert check.allowed_kept == 2 + 2 + 2 + 1
    assert check.denied_kept == 1  # cart -> cache
    assert diff is not None
    assert diff.counts()["newly_allowed"] == 0
    denied = {(c.src, c.dst, c.port) for c in diff.changes if c.change == "denied"}
    assert any(s.endswith("admin") and d.endswith("cart") and p == 8080 for s, d, p in denied)
    row = next(c for c in diff.changes if c.src.endswith("frontend") and c.dst.endswith("admin"))
    assert "shop/frontend-cnp#egress[1]" in row.old_rules


def test_a_hold_keeps_a_rule_the_lost_events_hide():
    """A 3-hour window whose every hour lost events: no hit proves nothing."""
    obs = _window()
    obs["first_seen"] = pd.Timestamp("2026-11-02 00:00:00")
    obs["last_seen"] = pd.Timestamp("2026-11-02 03:00:00")
    lost = [LostEvent(pd.Timestamp(f"2026-11-02 0{h}:30:00"), 40, "n1") for h in range(3)]
    held = _run(obs, history=TightenHistory(None, lost))
    notes = {str(n.rule): n.text for n in held.result.notes if n.kind == "evidence-hold"}
    assert sorted(notes) == [
        "data/cache-cnp#ingress[0]",
        "shop/cart-cnp#ingress[1]",
        "shop/frontend-cnp#egress[1]",
    ]
    assert notes["shop/frontend-cnp#egress[1]"].startswith("never seen, but lost-event gaps cover")
    assert held.result.changes == []


def test_observed_answers_are_the_dns_names_per_address():
    assert observed_answers(_window()) == {"198.51.100.7": ("api.example.com",)}


def test_two_runs_render_byte_identical_trees():
    trees = [add_written_through({}, _run().cilium_objects, []) for _ in range(2)]
    assert trees[0] == trees[1]
    assert sorted(trees[0]) == [
        "data/cache-cnp.yaml",
        "data/kustomization.yaml",
        "kustomization.yaml",
        "shop/cart-cnp.yaml",
        "shop/frontend-cnp.yaml",
        "shop/kustomization.yaml",
    ]


# ---------------------------------------------------------------------------
# CLI: only Cilium, and a mix of every kind
# ---------------------------------------------------------------------------


def _tighten_cli(tmp: Path, policies: list[str], out: str, *extra: str) -> int:
    from tests.test_tighten import _write_inputs

    inv, _ = _write_inputs(tmp)
    flows = SAMPLE / "flows-train.jsonl.gz"
    return main(
        ["tighten", "--policies", *policies, "--inventory", inv, "--flows", str(flows)]
        + ["--out", out, *extra]
    )


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_cli_only_cilium_and_mixed_lose_no_object(tmp_path, capsys, monkeypatch):
    import recommender.cli.tighten as cli

    # The window above stands in for flow files; no longer history, no lost events.
    monkeypatch.setattr(cli, "_evidence", lambda args, inventory: (_window(), []))
    monkeypatch.setattr(cli, "tighten_history", lambda args, inventory: None)
    pols = tmp_path / "policies"
    pols.mkdir()
    (pols / "cilium.yaml").write_text("---\n".join([FRONTEND, CART, CACHE]))
    only = tmp_path / "only"
    assert _tighten_cli(tmp_path, [str(pols)], str(only), "--json", str(tmp_path / "o.json")) == 0
    loaded = load_policies([str(only)])
    assert sorted(p.key for p in loaded.cilium) == [
        "data/cache-cnp",
        "shop/cart-cnp",
        "shop/frontend-cnp",
    ]
    report = json.loads((tmp_path / "o.json").read_text())
    assert report["semantic_diff"]["newly_allowed"] == 0
    assert "`prune-rule` " not in (only / "TIGHTEN.md").read_text()  # table, not notes
    assert "| prune-rule | `shop/frontend-cnp#egress[1]` |" in (only / "TIGHTEN.md").read_text()
    again = tmp_path / "again"
    assert _tighten_cli(tmp_path, [str(pols)], str(again)) == 0
    assert _tree_bytes(again) == _tree_bytes(only)  # byte-identical on two runs
    # refuses to overwrite
    assert _tighten_cli(tmp_path, [str(pols)], str(only)) == 2
    capsys.readouterr()

    (pols / "cluster.yaml").write_text(CLUSTER)
    mixed = tmp_path / "mixed"
    argv = [str(pols), str(CURRENT)]
    assert _tighten_cli(tmp_path, argv, str(mixed), "--json", str(tmp_path / "m.json")) == 0
    err = capsys.readouterr().err
    assert "note: ClusterNetworkPolicy/dns-for-all: written through unchanged" in err
    before, after = load_policies(argv), load_policies([str(mixed)])
    assert sorted(p.key for p in after.policies) == sorted(p.key for p in before.policies)
    assert sorted(p.key for p in after.cilium) == sorted(p.key for p in before.cilium)
    assert [c.raw for c in after.cluster] == [c.raw for c in before.cluster]
    assert (mixed / "_cluster" / "dns-for-all.yaml").exists()
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["self_check"]["ok"] is True
    assert report["semantic_diff"]["newly_allowed"] == 0
    kept = {(n["kind"], n["policy"]) for n in report["kept"]}
    assert ("not-tightened", "ClusterNetworkPolicy/dns-for-all") in kept


def test_a_name_shared_by_two_kinds_is_refused_not_guessed():
    from recommender.errors import InputError

    v1 = load_policies([str(CURRENT)]).policies
    same = _cilium(FRONTEND.replace("frontend-cnp", "frontend"))
    with pytest.raises(InputError, match="shop/frontend is both a NetworkPolicy and a Cilium"):
        tighten_kinds(v1, same, [], _window(), INV)


@pytest.mark.slow
def test_sample_round_trip_shadow_denies_nothing_new(tmp_path, capsys):
    """recommend --kind cilium, one unused rule added, tighten: it goes, shadow agrees."""
    flows, inv = str(SAMPLE / "flows-train.jsonl.gz"), str(SAMPLE / "inventory.json")
    common = ["--flows", flows, "--inventory", inv]
    rec = tmp_path / "rec"
    assert main(["recommend", *common, "--kind", "cilium", "--out", str(rec)]) == 0
    path = rec / "shop" / "frontend.yaml"
    obj = yaml.safe_load(path.read_text())
    extra = {
        "toCIDR": ["192.0.2.0/24"],  # TEST-NET-1: nothing in the sample goes there
        "toPorts": [{"ports": [{"port": "9999", "protocol": "TCP"}]}],
    }
    obj["spec"]["egress"].append(extra)
    path.write_text(yaml.safe_dump(obj))
    out, report = tmp_path / "tight", tmp_path / "t.json"
    assert (
        main(
            ["tighten", "--policies", str(rec), *common, "--out", str(out)]
            + ["--json", str(report)]
        )
        == 0
    )
    result = json.loads(report.read_text())
    index = len(obj["spec"]["egress"]) - 1
    assert [c["rule"] for c in result["changes"]] == [f"shop/frontend#egress[{index}]"]
    assert result["self_check"]["ok"] is True
    assert result["semantic_diff"]["newly_allowed"] == 0
    rows = result["semantic_diff"]["changes"]
    assert result["semantic_diff"]["newly_denied"] == len(rows) > 0
    assert {r["change"] for r in rows} == {"denied"}
    assert {r["src"] for r in rows} == {"shop/deployment/frontend"}
    assert "TCP 9999" in rows[0]["ports"]
    written = yaml.safe_load((out / "shop" / "frontend.yaml").read_text())
    assert extra not in written["spec"]["egress"]
    denied = {}
    for name, tree in (("rec", rec), ("tight", out)):
        js = tmp_path / f"{name}-shadow.json"
        assert main(["shadow", "--policies", str(tree), *common, "--json", str(js)]) == 0
        denied[name] = json.loads(js.read_text())["would_be_denied"]
    assert denied["tight"] == denied["rec"]  # nothing observed is denied that was allowed
    capsys.readouterr()


# ---------------------------------------------------------------------------
# B: ClusterNetworkPolicy in tighten: written through, enforced beside
# ---------------------------------------------------------------------------


def _cluster() -> list[ClusterPolicy]:
    return [load_cluster_policy(yaml.safe_load(CLUSTER), "cluster.yaml", 0)]


def test_cluster_policy_is_judged_beside_and_written_through_unchanged():
    """The Admin-tier Accept decides DNS egress before any NetworkPolicy is consulted.

    "If Admin tier has made a final decision (Accept or Deny) on a connection, then no
    further evaluation is done": under it shop/allow-dns is never the rule that allows
    frontend -> coredns UDP/53, so with --prune-dns it goes; without the
    ClusterNetworkPolicy the same rule is what allows that flow and stays.
    """
    v1 = load_policies([str(CURRENT)]).policies
    opts = TightenOptions(prune_dns=True)
    alone = tighten_kinds(v1, [], [], _window(), INV, opts)
    mixed = tighten_kinds(v1, [], _cluster(), _window(), INV, opts)
    pruned_alone = {c.rule for c in alone.result.changes if c.kind == "prune-rule"}
    pruned_mixed = {c.rule for c in mixed.result.changes if c.kind == "prune-rule"}
    assert "shop/allow-dns#egress[0]" not in pruned_alone
    assert alone.result.hits.rule("shop/allow-dns#egress[0]") is not None
    assert "shop/allow-dns#egress[0]" in pruned_mixed
    assert mixed.result.check.ok, mixed.result.check.violations
    assert mixed.result.diff is not None
    assert mixed.result.diff.counts()["newly_allowed"] == 0
    # The guardrail itself: the same object out, with the reason it was not touched.
    assert [c.raw for c in mixed.cluster] == [yaml.safe_load(CLUSTER)]
    note = next(n for n in mixed.result.notes if n.kind == "not-tightened")
    assert note.policy == "ClusterNetworkPolicy/dns-for-all"
    assert "owned by the platform team" in note.text
    assert "changes other namespaces' verdicts" in note.text
