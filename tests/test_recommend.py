"""recommend(): the learning set, groups, special peers, scope, determinism, stability."""

from __future__ import annotations

import pandas as pd
import pytest

from recommender.errors import InputError
from recommender.model import OBSERVATION_COLUMNS
from recommender.policy_io.policy_writer import render_tree
from recommender.policy_io.policy_yaml import dump_policy_yaml, policy_to_dict
from recommender.recommend.pipeline import RecommendOptions, recommend
from recommender.recommend.selectors import selector_labels_text
from recommender.recommend.synthesize import EVIDENCE_PREFIX, without_evidence
from recommender.semantics import compile_policies, pod_endpoint
from tests.conftest import GOLDEN
from tests.fixtures.recommend.shop import (
    APISERVER_IP,
    NODE_IPS,
    PAYMENTS_IP,
    obs,
    shop_inventory,
    shop_observations,
    shop_rows,
)


@pytest.fixture(scope="module")
def inventory():
    return shop_inventory()


@pytest.fixture(scope="module")
def rec(inventory):
    return recommend(shop_observations(), inventory)


def _policy(rec, ns, name):
    return next(p for p in rec.policies if (p.namespace, p.name) == (ns, name))


def _reasons(rec):
    return rec.excluded.groupby("reason")["connections"].sum().to_dict()


def test_self_check_passes_and_every_learned_observation_is_allowed(rec, inventory):
    check = rec.self_check(inventory)
    assert check.ok, check.message()
    assert check.checked_learned == len(rec.learned) > 10
    assert check.allowed_excluded == ()


def test_layout_per_namespace(rec):
    names = {(p.namespace, p.name) for p in rec.policies}
    assert ("shop", "default-deny") in names
    assert ("shop", "allow-dns") in names
    assert {n for ns, n in names if ns == "shop"} >= {"frontend", "cart", "redis", "worker"}
    assert not any(ns == "kube-system" for ns, _ in names)
    assert "system namespace" in rec.skipped_namespaces["kube-system"]


def test_denied_attempts_scans_unknown_icmp_and_probes_are_excluded(rec):
    reasons = _reasons(rec)
    assert reasons["denied"] == 4
    assert reasons["suspicious"] == 20
    assert reasons["unknown-peer"] == 20
    assert reasons["not-expressible"] == 20
    assert "own-node" not in reasons  # node-2 to a pod on node-1 is another node
    assert [f.shape for f in rec.scans] == ["port scan"]
    cart = policy_to_dict(_policy(rec, "shop", "cart"))
    assert "catalog" not in str(cart["spec"].get("egress"))  # the denied attempt


def test_dns_policy_uses_the_labels_the_dns_pods_carry(rec):
    spec = policy_to_dict(_policy(rec, "shop", "allow-dns"))["spec"]
    peer = spec["egress"][0]["to"][0]
    assert peer == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    assert spec["egress"][0]["ports"] == [
        {"protocol": "TCP", "port": 53},
        {"protocol": "UDP", "port": 53},
    ]
    assert "53" not in str(policy_to_dict(_policy(rec, "shop", "frontend"))["spec"]["egress"])


def test_dns_warning_when_no_dns_flows(rec):
    assert any("no DNS flows captured" in w and "monitoring" in w for w in rec.warnings)
    assert not any("no DNS flows" in w and "shop" in w for w in rec.warnings)


def test_cross_namespace_peer_pairs_namespace_and_pod_selector(rec):
    spec = policy_to_dict(_policy(rec, "shop", "frontend"))["spec"]
    peer = spec["ingress"][0]["from"][0]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}


def test_apiserver_and_external_peers_are_exact_ipblocks_with_fqdn_annotation(rec):
    worker = _policy(rec, "shop", "worker")
    text = dump_policy_yaml(worker)
    assert f"cidr: {APISERVER_IP}/32" in text
    assert "port: 6443" in text
    assert f"cidr: {PAYMENTS_IP}/32" in text
    assert dict(worker.annotations)[f"{EVIDENCE_PREFIX}fqdns"] == (
        '{"203.0.113.10/32":["api.payments.example"]}'
    )


def test_identical_profiles_share_one_group(rec):
    catalog = next(g for g in rec.groups if g.name == "catalog")
    assert [m.name for m in catalog.members] == ["catalog", "catalog-canary"]
    assert catalog.extra_edges == ()  # identical profiles add no privilege


def test_ingress_from_another_node_is_an_exact_ipblock_without_allow_host(rec):
    text = dump_policy_yaml(_policy(rec, "shop", "frontend"))
    assert f"cidr: {NODE_IPS[1]}/32" in text
    assert f"cidr: {NODE_IPS[0]}/32" not in text  # the own node needs no rule


def test_allow_host_adds_every_node_address(inventory):
    rec = recommend(shop_observations(), inventory, RecommendOptions(allow_host=True))
    text = dump_policy_yaml(_policy(rec, "shop", "frontend"))
    for ip in NODE_IPS:
        assert f"cidr: {ip}/32" in text
    assert "own-node" not in _reasons(rec)
    assert rec.self_check(inventory).ok


def test_include_suspicious_learns_the_scan(inventory):
    rec = recommend(shop_observations(), inventory, RecommendOptions(include_suspicious=True))
    assert "suspicious" not in _reasons(rec)
    canary = dump_policy_yaml(_policy(rec, "shop", "redis"))
    assert "port: 17" in canary


def test_namespace_options(inventory):
    only = recommend(shop_observations(), inventory, RecommendOptions(namespaces=("kube-system",)))
    assert only.namespaces == ["kube-system"]
    assert {p.name for p in only.policies} >= {"coredns", "default-deny", "allow-dns"}
    coredns = dump_policy_yaml(_policy(only, "kube-system", "coredns"))
    assert "kubernetes.io/metadata.name: shop" in coredns  # ingress from shop's DNS clients
    excl = recommend(
        shop_observations(), inventory, RecommendOptions(exclude_namespaces=("monitoring",))
    )
    assert "monitoring" not in excl.namespaces
    assert excl.skipped_namespaces["monitoring"].startswith("excluded")
    # the in-scope side still allows the scrapes from the excluded namespace
    assert "monitoring" in dump_policy_yaml(_policy(excl, "shop", "cart"))


def test_merge_similar_reports_what_the_merge_allows(inventory):
    rows = shop_rows() + [obs("frontend", "redis", 6379)]
    frame = pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))
    exact = recommend(frame, inventory)
    assert {g.name for g in exact.groups} >= {"frontend", "cart"}
    merged = recommend(frame, inventory, RecommendOptions(merge_similar=0.9))
    group = next(g for g in merged.groups if "cart" in [m.name for m in g.members])
    # frontend shares no label with the api tier, but every member names its app: one group
    assert [m.name for m in group.members] == ["cart", "catalog", "catalog-canary", "frontend"]
    policy = _policy(merged, "shop", group.name)
    assert selector_labels_text(policy.pod_selector) == "app in (cart,catalog,frontend)"
    assert not any("split along the selectors" in w for w in merged.warnings)
    extra = dict(group.extra_edges)
    assert ("egress", 'shop/{"app":"redis","tier":"db"}', "TCP", 6379) in extra["catalog"]
    summary = merged.summary_markdown()
    assert "what it never used" in summary
    assert merged.self_check(inventory).ok


def test_cidr_budget_merges_external_addresses(inventory):
    rows = shop_rows() + [obs("worker", "world", 443, dst_ip="203.0.113.11")]
    frame = pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))
    exact = dump_policy_yaml(_policy(recommend(frame, inventory), "shop", "worker"))
    assert "203.0.113.10/32" in exact
    assert "203.0.113.11/32" in exact
    rec = recommend(frame, inventory, RecommendOptions(cidr_budget=2))
    assert "cidr: 203.0.113.10/31" in dump_policy_yaml(_policy(rec, "shop", "worker"))
    assert "admits 2 address(es), 0 beyond the 2 observed" in rec.summary_markdown()


def test_named_ports_and_port_ranges(inventory):
    rows = shop_rows() + [obs("worker", "cart", p) for p in (7000, 7001, 7002)]
    frame = pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))
    rec = recommend(frame, inventory, RecommendOptions(named_ports=True, port_ranges=True))
    frontend = policy_to_dict(_policy(rec, "shop", "frontend"))["spec"]
    ports = [p["port"] for r in frontend["ingress"] for p in r["ports"]]
    # 8080: the ipBlock rule for ingress from node-2 (address peers keep numbers)
    assert sorted(map(str, ports)) == ["8080", "http", "metrics"]
    cart = policy_to_dict(_policy(rec, "shop", "cart"))["spec"]
    assert {"protocol": "TCP", "port": 7000, "endPort": 7002} in [
        p for r in cart["ingress"] for p in r["ports"]
    ]
    assert rec.self_check(inventory).ok


def test_output_is_deterministic_and_independent_of_row_order(inventory):
    a = render_tree(recommend(shop_observations(), inventory).policies, "")
    shuffled = shop_observations().sample(frac=1.0, random_state=3).reset_index(drop=True)
    b = render_tree(recommend(shuffled, inventory).policies, "")
    assert a == b


def test_rollout_gives_identical_policies_apart_from_evidence():
    before = recommend(shop_observations(day=1), shop_inventory())
    after = recommend(shop_observations(day=2), shop_inventory(hash_="77aa11", ip_base=120))
    strip = [dump_policy_yaml(without_evidence(p)) for p in before.policies]
    assert strip == [dump_policy_yaml(without_evidence(p)) for p in after.policies]
    evid = [dict(p.annotations).get(f"{EVIDENCE_PREFIX}first-seen") for p in after.policies]
    assert "2026-03-02T08:00:00Z" in evid


def test_missing_columns_is_an_input_error(inventory):
    with pytest.raises(InputError, match="lacks columns"):
        recommend(pd.DataFrame({"src_kind": []}), inventory)


def test_learned_traffic_allowed_and_lateral_move_denied(rec, inventory):
    ps = compile_policies(rec.policies, inventory)
    ns = {"kubernetes.io/metadata.name": "shop"}
    frontend = pod_endpoint("shop", {"app": "frontend", "tier": "web"}, ns)
    redis = pod_endpoint("shop", {"app": "redis", "tier": "db"}, ns)
    cart = pod_endpoint("shop", {"app": "cart", "tier": "api"}, ns)
    assert ps.decide(cart, redis, 6379, "TCP").is_allowed
    assert not ps.decide(frontend, redis, 6379, "TCP").is_allowed
    assert not ps.decide(cart, redis, 6380, "TCP").is_allowed


def test_golden_tree(rec, inventory, update_golden):
    files = render_tree(rec.policies, rec.summary_markdown(rec.self_check(inventory)))
    root = GOLDEN / "recommend" / "shop"
    if update_golden:
        for rel, text in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    stored = {
        str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()
    }
    assert stored == files


def test_output_bytes_do_not_depend_on_hash_seed(tmp_path):
    import hashlib
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = (
        "import sys, hashlib; sys.path.insert(0, 'tests')\n"
        "from fixtures.recommend.shop import shop_inventory, shop_observations\n"
        "from recommender.recommend.pipeline import recommend\n"
        "from recommender.policy_io.policy_writer import render_tree\n"
        "r = recommend(shop_observations(), shop_inventory())\n"
        "t = render_tree(r.policies, r.summary_markdown())\n"
        "print(hashlib.sha256(repr(sorted(t.items())).encode()).hexdigest())\n"
    )
    digests = set()
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert hashlib.sha256(b"").hexdigest() not in digests


# -- the simulator's two windows (data/sample): a rollout between train and fresh ----------

SAMPLE = GOLDEN.parents[1] / "data" / "sample"


#: Columns that identify an edge, independent of pod names and counts.
EDGE_KEY = [
    "src_kind",
    "src_namespace",
    "src_labels",
    "src_ip",
    "dst_kind",
    "dst_namespace",
    "dst_labels",
    "dst_ip",
    "port",
    "protocol",
]


def _edge_keys(frame):
    return pd.Series(
        ["|".join(map(str, row)) for row in frame[EDGE_KEY].itertuples(index=False)],
        index=frame.index,
    )


@pytest.fixture(scope="module")
def sample_windows():
    """Observations and inventories of both windows; the rollout happens in between."""
    from recommender.inventory.files import read_inventory
    from recommender.observe.factory import get_engine

    engine = get_engine("embedded")
    out = {}
    for window, inv_name in (("train", "inventory.json"), ("fresh", "inventory-fresh.json")):
        inventory = read_inventory([str(SAMPLE / inv_name)])
        observations = engine.aggregate(
            [str(SAMPLE / f"flows-{window}.jsonl.gz")], inventory
        ).observations
        out[window] = (observations, inventory)
    return out


@pytest.mark.slow
def test_sample_rollout_windows_give_identical_policies_apart_from_evidence(sample_windows):
    """On the edges both windows saw, the rollout (new pod-template-hash, names, IPs) changes
    nothing but evidence. Edges seen in one window only (fresh-only edges, a CronJob picking
    other object-store addresses) legitimately change the rules, so they are left out."""
    train_obs, train_inv = sample_windows["train"]
    fresh_obs, fresh_inv = sample_windows["fresh"]
    common = set(_edge_keys(train_obs)) & set(_edge_keys(fresh_obs))
    train = recommend(train_obs[_edge_keys(train_obs).isin(common)], train_inv)
    fresh = recommend(fresh_obs[_edge_keys(fresh_obs).isin(common)], fresh_inv)
    # a rollout really happened: most Deployment pods have new names and addresses
    deployed = [
        {(p.name, p.ips) for p in inv.pods if p.owner_kind == "Deployment"}
        for inv in (train_inv, fresh_inv)
    ]
    assert len(deployed[0] - deployed[1]) > len(deployed[0]) / 2
    before = [dump_policy_yaml(without_evidence(p)) for p in train.policies]
    after = [dump_policy_yaml(without_evidence(p)) for p in fresh.policies]
    assert len(before) > 10
    assert before == after
    # the evidence really differs, so the comparison above is not vacuous
    assert [p.annotations for p in train.policies] != [p.annotations for p in fresh.policies]


@pytest.mark.slow
def test_sample_self_check_and_attacks_not_learned(sample_windows):
    observations, inventory = sample_windows["train"]
    rec = recommend(observations, inventory)
    check = rec.self_check(inventory)
    assert check.ok, check.message()
    assert {f.shape for f in rec.scans} >= {"port scan"}
    assert "suspicious" in set(rec.excluded["reason"])
    assert "denied" in set(rec.excluded["reason"])
