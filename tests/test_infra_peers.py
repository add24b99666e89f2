"""Infrastructure peers end to end: recommend, then shadow of the same window.

Each case of tests/fixtures/infra (see make_fixtures.py there) is recommended from
an inventory without EndpointSlices (and one with), then the same flows are
replayed against the output: no learned observation may be denied, and every
observation that is not learned is named in SUMMARY.md with its reason.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.model import OBSERVATION_COLUMNS, Inventory
from recommender.observe.factory import get_engine
from recommender.policy_io.policy_yaml import dump_policy_yaml, policy_to_dict
from recommender.recommend.accounting import observation_outcomes
from recommender.recommend.pipeline import Recommendation, RecommendOptions, recommend
from recommender.semantics import compile_policies
from recommender.shadow.core import run_shadow
from tests.conftest import FIXTURES, ROOT, SAMPLES

INFRA = FIXTURES / "infra"


@cache
def _inventory(name: str) -> Inventory:
    return read_inventory([str(INFRA / f"{name}.json")])


@cache
def _run(case: str, inv_name: str = "inventory") -> tuple[Recommendation, pd.DataFrame]:
    """The recommendation of one case and the shadow verdicts of the same flows."""
    inv = _inventory(inv_name)
    path = str(INFRA / f"{case}.ndjson")
    obs = get_engine().aggregate([path], inv).observations
    rec = recommend(obs, inv)
    records = get_engine().read_flows([path], inv).to_pandas()
    _, verdicts = run_shadow([records], compile_policies(rec.policies, inv), inv)
    return rec, verdicts


def _outcome_by_ref(rec: Recommendation, obs_refs: pd.Series) -> dict[str, str]:
    per_obs = observation_outcomes(rec.table).set_index("obs")["outcome"].to_dict()
    return {Path(ref).name: per_obs[pos] for pos, refs in obs_refs.items() for ref in refs}


def _check_case(case: str, inv_name: str = "inventory") -> Recommendation:
    rec, verdicts = _run(case, inv_name)
    check = rec.self_check(_inventory(inv_name))
    assert check.ok, check.message()
    assert rec.accounting.problems() == []
    assert rec.accounting.total == len(verdicts)  # one line per observation in these files
    obs = get_engine().aggregate([str(INFRA / f"{case}.ndjson")], _inventory(inv_name))
    outcome = _outcome_by_ref(rec, obs.observations["refs"])
    summary = rec.summary_markdown(check)
    for v in verdicts.to_dict("records"):
        if outcome[Path(v["ref"]).name] == "learned":
            # shadow judges an untranslated Service VIP as unknown (policies apply after
            # DNAT, see flow_endpoints); everything else learned must be allowed
            expected = {"allowed", "unknown"} if v["dst"] == "10.96.0.1" else {"allowed"}
            assert v["verdict"] in expected, (case, v)
    for r in rec.excluded.to_dict("records"):
        assert f"**{r['reason']}**" in summary, (case, r["reason"])
    return rec


def _policy_text(rec: Recommendation, name: str) -> str:
    return dump_policy_yaml(next(p for p in rec.policies if (p.namespace, p.name) == ("app", name)))


@pytest.mark.parametrize("case", ["apiserver-in-cluster", "apiserver-translated"])
def test_in_cluster_apiserver_is_an_egress_ipblock_on_6443(case):
    rec = _check_case(case)
    text = _policy_text(rec, "operator")
    assert "cidr: 192.168.0.5/32" in text
    assert "port: 6443" in text
    assert rec.accounting.outcomes["learned"] == 1
    assert (
        "Cilium gives node and API server addresses reserved identities" in rec.summary_markdown()
    )


def test_managed_apiserver_is_an_egress_ipblock_on_443():
    rec = _check_case("apiserver-managed")
    text = _policy_text(rec, "operator")
    assert "cidr: 203.0.113.7/32" in text
    assert "port: 443" in text


def test_apiserver_vip_without_endpoints_is_unknown_with_its_reason_and_warned():
    rec = _check_case("apiserver-vip")
    assert rec.accounting.outcomes["unknown"] == 1
    assert dict(rec.accounting.reasons) == {"apiserver-endpoints-unknown": 1}
    check = rec.self_check(_inventory("inventory"))
    assert len(check.denied_unknown) == 1
    assert "10.96.0.1:443" in check.denied_unknown[0]
    summary = rec.summary_markdown(check)
    assert "WARNING: traffic that flowed but was not learned" in summary
    # every workload of app has no learned edge, so they share one podSelector {} group
    assert "operator-group (nothing learned: 1 unknown observation(s)" in summary
    assert "no traffic" not in summary


def test_apiserver_vip_with_endpoint_slice_maps_to_endpoint_and_target_port():
    rec = _check_case("apiserver-vip", "inventory-eps")
    text = _policy_text(rec, "operator")
    assert "cidr: 192.168.0.5/32" in text
    assert "port: 6443" in text
    assert "port: 443" not in text


def test_admission_webhook_gets_ingress_from_the_apiserver_address():
    rec = _check_case("webhook")
    spec = policy_to_dict(next(p for p in rec.policies if p.name == "webhook"))["spec"]
    assert spec["ingress"] == [
        {
            "from": [{"ipBlock": {"cidr": "192.168.0.5/32"}}],
            "ports": [{"protocol": "TCP", "port": 9443}],
        }
    ]


def test_nodes_own_node_other_node_hostnetwork_and_cilium_health():
    rec = _check_case("nodes")
    assert dict(rec.accounting.reasons) == {"own-node": 1, "cilium-identity": 1}
    assert "cidr: 192.168.0.12/32" in _policy_text(rec, "shop")  # NodePort SNAT, other node
    assert "port: 9100" in _policy_text(rec, "operator")  # hostNetwork node-exporter
    summary = rec.summary_markdown()
    assert "if the traffic source is the pod's local node" in summary
    assert "host:192.168.0.11 -> app/web TCP/8080" in summary  # listed under own-node


def test_dns_to_kube_dns_pods_and_nodelocal_cache():
    rec = _check_case("dns")
    dns = policy_to_dict(
        next(p for p in rec.policies if (p.namespace, p.name) == ("app", "allow-dns"))
    )["spec"]
    blocks = [p["ipBlock"]["cidr"] for r in dns["egress"] for p in r["to"] if "ipBlock" in p]
    assert blocks == ["169.254.20.10/32"]
    assert rec.accounting.outcomes["learned"] == 2
    assert "learned traffic is DNS only" in rec.summary_markdown()


def test_openshift_dns_on_5353_behind_a_service_on_53():
    rec = _check_case("openshift-dns", "inventory-openshift")
    assert rec.dns.namespace == "openshift-dns"
    assert "openshift-dns" not in rec.namespaces  # a platform namespace, like kube-system
    text = dump_policy_yaml(next(p for p in rec.policies if p.name == "allow-dns"))
    assert "port: 5353" in text
    assert "port: 53\n" not in text


def test_loadbalancer_with_local_traffic_policy_keeps_the_client_address():
    rec = _check_case("loadbalancer-local")
    assert "cidr: 198.51.100.7/32" in _policy_text(rec, "web")


def test_hairpin_to_own_service_is_allowed_both_ways():
    rec = _check_case("hairpin")
    text = _policy_text(rec, "web")
    assert text.count("app: web") >= 3  # selector, egress peer and ingress peer
    _, verdicts = _run("hairpin")
    # also allowed by the spec itself: "a pod cannot block access to itself"
    assert set(verdicts["verdict"]) == {"allowed"}


# -- the accounting invariant -------------------------------------------------------------


def _assert_adds_up(rec: Recommendation, total: int) -> None:
    acc = rec.accounting
    assert acc.problems() == [], acc.problems()
    assert acc.total == total
    assert sum(acc.outcomes.values()) == total
    per_obs = observation_outcomes(rec.table)
    assert sorted(per_obs["obs"]) == list(range(total))  # exactly one outcome each


def test_accounting_adds_up_on_the_bundled_sample_and_every_hubble_sample():
    samples = sorted(p for p in (SAMPLES / "hubble").rglob("*") if p.is_file())
    assert len(samples) >= 10
    for path in samples:
        obs = get_engine().aggregate([str(path)], Inventory()).observations
        _assert_adds_up(recommend(obs, Inventory()), len(obs))
    inv = read_inventory([str(ROOT / "data" / "sample" / "inventory.json")])
    obs = (
        get_engine()
        .aggregate([str(ROOT / "data" / "sample" / "flows-train.jsonl.gz")], inv)
        .observations
    )
    rec = recommend(obs, inv)
    _assert_adds_up(rec, len(obs))
    summary = rec.summary_markdown()
    for g in rec.groups:
        counts: dict[str, int] = rec.accounting.by_group.get(f"{g.namespace}/{g.name}", {})
        if sum(counts.values()):
            assert f"{g.name} (no traffic observed" not in summary


_KINDS = st.sampled_from(["pod", "host", "world", "service", "cluster_infra", "unknown"])
_VERDICTS = st.sampled_from(
    [{"allowed": 1}, {"denied": 1, "policy_denied": 1}, {"error": 1}, {"audit": 1}]
)


@st.composite
def _observation(draw: st.DrawFn) -> dict[str, object]:
    row: dict[str, object] = {c: None for c in OBSERVATION_COLUMNS}
    for side in ("src", "dst"):
        kind = draw(_KINDS)
        row[f"{side}_kind"] = kind
        if kind == "pod":
            row.update(
                {
                    f"{side}_namespace": "app",
                    f"{side}_labels": json.dumps(
                        {"app": draw(st.sampled_from(["operator", "web", "ghost"]))}
                    ),
                }
            )
        else:
            row[f"{side}_ip"] = draw(
                st.sampled_from(
                    [None, "10.96.0.1", "192.168.0.5", "192.168.0.11", "169.254.20.10", "8.8.8.8"]
                )
            )
            row[f"{side}_workload"] = draw(
                st.sampled_from([None, "kube-apiserver", "health", "node/node-a"])
            )
    row.update(
        {
            "port": draw(st.sampled_from([None, 53, 443, 6443, 8080])),
            "protocol": draw(st.sampled_from(["TCP", "UDP", "ICMPv4"])),
            "connections": 1,
            "verdicts": draw(_VERDICTS),
            "dst_names": [],
            "first_seen": pd.Timestamp("2026-11-02T10:00:00Z"),
            "last_seen": pd.Timestamp("2026-11-02T10:00:00Z"),
            "refs": [],
        }
    )
    return row


@settings(max_examples=25, deadline=None)
@given(st.lists(_observation(), min_size=1, max_size=12))
def test_accounting_invariant_holds_for_any_observation_table(rows):
    frame = pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))
    _assert_adds_up(recommend(frame, _inventory("inventory")), len(frame))


# -- the command line ---------------------------------------------------------------------


def test_cli_json_accounting_and_fail_on_deny(tmp_path, capsys):
    out, report = tmp_path / "out", tmp_path / "rec.json"
    argv = [
        "recommend",
        "--flows",
        str(INFRA / "apiserver-vip.ndjson"),
        "--inventory",
        str(INFRA / "inventory.json"),
        "--out",
        str(out),
        "--json",
        str(report),
        "--fail-on-deny",
    ]
    assert main(argv) == 3
    doc = json.loads(report.read_text())
    acc = doc["accounting"]
    assert (acc["total"], acc["learned"], acc["excluded"], acc["unknown"]) == (1, 0, 0, 1)
    assert acc["namespaces"] == {"app": {"learned": 0, "excluded": 0, "unknown": 1}}
    assert acc["groups"]["app/operator-group"]["unknown"] == 1
    assert doc["self_check"]["unlearned_denied"]
    assert "apiserver-endpoints-unknown" in (out / "SUMMARY.md").read_text()
    assert "WARNING" in capsys.readouterr().err


def _host_to_shop(ip: str, workload: str) -> pd.DataFrame:
    row: dict[str, object] = {c: None for c in OBSERVATION_COLUMNS}
    row.update(
        {
            "src_kind": "host",
            "src_ip": ip,
            "src_workload": workload,
            "dst_kind": "pod",
            "dst_namespace": "app",
            "dst_labels": json.dumps({"app": "shop"}),
            "port": 8080,
            "protocol": "TCP",
            "connections": 3,
            "verdicts": {"allowed": 3},
            "dst_names": [],
            "refs": [],
            "first_seen": pd.Timestamp("2026-11-02T10:00Z"),
            "last_seen": pd.Timestamp("2026-11-02T10:00Z"),
        }
    )
    return pd.DataFrame([row], columns=list(OBSERVATION_COLUMNS))


def test_known_node_address_to_a_workload_spread_over_nodes_gets_an_ipblock():
    # shop runs on node-a and node-b: the flow may have reached the pod on node-b
    rec = recommend(_host_to_shop("192.168.0.11", "node/node-a"), _inventory("inventory"))
    assert rec.accounting.outcomes["learned"] == 1
    assert "cidr: 192.168.0.11/32" in _policy_text(rec, "shop")


def test_hubble_local_host_address_is_the_own_node_of_the_pod_it_reached():
    # Cilium's router IP (unknown to the inventory), named by reserved:host on node-a
    rec = recommend(_host_to_shop("10.244.1.1", "node/node-a"), _inventory("inventory"))
    assert dict(rec.accounting.reasons) == {"own-node": 1}
    with_host = recommend(
        _host_to_shop("10.244.1.1", "node/node-a"),
        _inventory("inventory"),
        RecommendOptions(allow_host=True),
    )
    assert "cidr: 10.244.1.1/32" in _policy_text(with_host, "shop")
