"""Smallest exact stable selectors."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.inventory.files import parse_inventory_items
from recommender.labels import encode_labels, is_ephemeral_key, matches_selector
from recommender.model import OBSERVATION_COLUMNS, Inventory, LabelSelector
from recommender.recommend.pipeline import recommend
from recommender.recommend.selectors import (
    NAMING_KEYS,
    common_pairs,
    cover_selectors,
    find_selector,
    naming_selector,
    select_exactly,
    selector_labels_text,
)
from recommender.semantics import compile_policies, endpoint_for_pod


def test_conventional_key_is_preferred_over_others():
    web = {"zone": "a", "app": "web", "team": "x"}
    choice = find_selector([web], [{"zone": "a", "app": "db", "team": "x"}])
    assert choice.selector.match_labels == (("app", "web"),)


def test_smallest_selector_uses_two_pairs_only_when_needed():
    targets = [{"app": "api", "tier": "backend"}]
    others = [{"app": "api", "tier": "frontend"}, {"app": "web", "tier": "backend"}]
    choice = find_selector(targets, others)
    assert choice.selector.match_labels == (("app", "api"), ("tier", "backend"))
    assert choice.method == "exact"


def test_ephemeral_labels_never_enter_a_selector():
    targets = [{"app": "web", "pod-template-hash": "abc"}]
    others = [{"app": "web", "pod-template-hash": "def"}]
    # same stable labels: same workload; nothing stable tells them apart
    assert find_selector(targets, others) is None
    assert common_pairs(targets) == [("app", "web")]


def test_absence_selector_when_labels_are_a_subset_of_another_workload():
    stable = {"app": "catalog"}
    canary = {"app": "catalog", "track": "canary"}
    choice = find_selector([stable], [canary])
    assert choice.method == "absence"
    assert selector_labels_text(choice.selector) == "app=catalog,!track"
    assert matches_selector(choice.selector, stable)
    assert not matches_selector(choice.selector, canary)


def test_group_without_common_label_or_naming_key_has_no_selector():
    assert find_selector([{"role": "a"}, {"role": "b"}], [{"role": "c"}]) is None
    # mixed naming keys: no single key names every target
    assert find_selector([{"app": "a"}, {"k8s-app": "b"}], [{"app": "c"}]) is None


def test_select_exactly_takes_the_whole_universe():
    universe = [{"tier": "x", "zone": "1"}, {"tier": "x", "zone": "2"}, {"zone": "3"}]
    choice = select_exactly(universe[:2], universe)
    assert choice.selector.match_labels == (("tier", "x"),)


def test_cover_selectors_combines_what_it_can():
    universe = [
        {"role": "a", "tier": "api"},
        {"role": "b", "tier": "api"},
        {"role": "c"},
        {"role": "d", "tier": "api2"},
    ]
    cover = cover_selectors([universe[0], universe[1], universe[3]], universe)
    texts = [selector_labels_text(s) for s, _ in cover]
    assert texts == ["tier=api", "tier=api2"]


def test_cover_piece_keeps_the_naming_label_of_what_it_covers():
    r3, r4 = {"app": "r", "track": "c", "v": "3"}, {"app": "r", "track": "c", "v": "4"}
    loner = {"team": "z"}
    universe = [r3, r4, loner, {"app": "r", "v": "1"}, {"team": "y"}]
    cover = cover_selectors([r3, r4, loner], universe)
    # track=c alone would admit any future track=c workload of another app
    assert [(selector_labels_text(s), ix) for s, ix in cover] == [
        ("app=r,track=c", [0, 1]),
        ("team=z", [2]),
    ]


def test_selector_text_for_empty_selector():
    assert selector_labels_text(LabelSelector()) == "(all pods)"


_label_sets = st.lists(
    st.dictionaries(
        st.sampled_from(["app", "tier", "track", "pod-template-hash", "team"]),
        st.sampled_from(["a", "b", "c"]),
        max_size=4,
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None)
@given(_label_sets, st.data())
def test_property_selector_is_exact_and_stable(universe, data):
    stable = [{k: v for k, v in u.items() if not is_ephemeral_key(k)} for u in universe]
    picks = data.draw(st.sets(st.integers(0, len(universe) - 1), min_size=1))
    targets = [stable[i] for i in sorted(picks)]
    others = [s for s in stable if s not in targets]
    choice = find_selector(targets, others)
    if choice is None:
        return
    sel = choice.selector
    assert all(matches_selector(sel, t) for t in targets)
    assert not any(matches_selector(sel, o) for o in others)
    keys = [k for k, _ in sel.match_labels or ()] + [r.key for r in sel.match_expressions or ()]
    assert not any(is_ephemeral_key(k) for k in keys)
    assert not sel.is_empty
    naming = naming_selector(targets)
    if naming is not None:  # the rule: the naming part is always in the selector
        assert set(naming.match_labels or ()) <= set(sel.match_labels or ())
        assert set(naming.match_expressions or ()) <= set(sel.match_expressions or ())


_HELM_REDIS = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "cache"}
#: (layout, targets, others, expected selector); the comment gives today's minimal one.
RULE_TABLE = [
    (
        "helm, component distinguishes",  # was app.kubernetes.io/component=master
        [{**_HELM_REDIS, "app.kubernetes.io/component": "master"}],
        [
            {**_HELM_REDIS, "app.kubernetes.io/component": "replica"},
            {"app.kubernetes.io/name": "postgresql", "app.kubernetes.io/component": "primary"},
        ],
        "app.kubernetes.io/component=master,app.kubernetes.io/name=redis",
    ),
    (
        "helm, two releases of one chart",  # was app.kubernetes.io/instance=cache
        [_HELM_REDIS],
        [
            {"app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": "sessions"},
            {"app.kubernetes.io/name": "nginx", "app.kubernetes.io/instance": "web"},
        ],
        "app.kubernetes.io/instance=cache,app.kubernetes.io/name=redis",
    ),
    (
        "helm, one release's applications: instance is the naming label",
        [
            {"app.kubernetes.io/name": "api", "app.kubernetes.io/instance": "shop"},
            {"app.kubernetes.io/name": "worker", "app.kubernetes.io/instance": "shop"},
        ],
        [{"app.kubernetes.io/name": "api", "app.kubernetes.io/instance": "blog"}],
        "app.kubernetes.io/instance=shop",
    ),
    (
        "k8s-app only",  # was version=v2
        [{"k8s-app": "kube-dns", "version": "v2"}],
        [{"k8s-app": "kube-dns", "version": "v1"}, {"k8s-app": "metrics", "version": "v1"}],
        "k8s-app=kube-dns,version=v2",
    ),
    (
        "two naming keys: the preferred one only",
        [{"app.kubernetes.io/name": "web", "app": "web", "tier": "fe"}],
        [{"app.kubernetes.io/name": "cart", "app": "cart", "tier": "api"}],
        "app.kubernetes.io/name=web",
    ),
    (
        "several applications: In over the naming key",  # was tier=api
        [{"app": "cart", "tier": "api"}, {"app": "catalog", "tier": "api"}],
        [{"app": "frontend", "tier": "web"}, {"app": "catalog", "tier": "db"}],
        "tier=api,app in (cart,catalog)",
    ),
    (
        "naming label plus absence",
        [{"name": "catalog"}],
        [{"name": "catalog", "track": "canary"}],
        "name=catalog,!track",
    ),
    (
        "no naming label: smallest distinguishing set",
        [{"tier": "web", "version": "v2"}],
        [{"tier": "web", "version": "v1"}, {"tier": "db", "version": "v2"}],
        "tier=web,version=v2",
    ),
]


@pytest.mark.parametrize(
    ("layout", "targets", "others", "expected"), RULE_TABLE, ids=[row[0] for row in RULE_TABLE]
)
def test_rule_table(layout, targets, others, expected):
    choice = find_selector(targets, others)
    assert selector_labels_text(choice.selector) == expected, layout
    assert all(matches_selector(choice.selector, t) for t in targets)
    assert not any(matches_selector(choice.selector, o) for o in others)


def test_naming_keys_are_the_documented_ones():
    assert NAMING_KEYS == ("app.kubernetes.io/name", "app", "k8s-app", "name")
    assert naming_selector([{"app.kubernetes.io/component": "db"}]) is None


# -- future workloads: the naming label stays in the selector ---------------------------

#: owner -> stable labels; ratings-v2 is the workload deployed "tomorrow".
BOOKINFO = {
    "productpage-v1": {"app": "productpage", "version": "v1"},
    "reviews-v1": {"app": "reviews", "version": "v1"},
    "reviews-v2": {"app": "reviews", "version": "v2"},
    "ratings-v1": {"app": "ratings", "version": "v1"},
    "ratings-v2": {"app": "ratings", "version": "v2"},
}


def _bookinfo_pod(owner: str, ip: str) -> dict[str, Any]:
    labels = {**BOOKINFO[owner], "pod-template-hash": "7f9c"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{owner}-7f9c-00000",
            "namespace": "bookinfo",
            "labels": labels,
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": f"{owner}-7f9c", "controller": True}
            ],
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "c", "ports": [{"containerPort": 9080, "protocol": "TCP"}]}],
        },
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _bookinfo_inventory(owners: list[str]) -> Inventory:
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bookinfo"}}
    ]
    items += [_bookinfo_pod(o, f"10.244.0.{10 + i}") for i, o in enumerate(owners)]
    return parse_inventory_items(items, "bookinfo.json")


def _bookinfo_obs(src: str, dst: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(OBSERVATION_COLUMNS)
    for side, owner in (("src", src), ("dst", dst)):
        row.update(
            {
                f"{side}_kind": "pod",
                f"{side}_namespace": "bookinfo",
                f"{side}_labels": encode_labels(BOOKINFO[owner]),
                f"{side}_workload": f"deployment/{owner}",
            }
        )
    row.update(
        {
            "dst_names": [],
            "port": 9080,
            "protocol": "TCP",
            "connections": 20,
            "first_seen": pd.Timestamp("2026-03-01T08:00:00Z"),
            "last_seen": pd.Timestamp("2026-03-01T18:00:00Z"),
            "verdicts": {"allowed": 20},
            "refs": ["flows.json:1"],
        }
    )
    return row


def test_future_workload_with_same_version_other_app_is_not_admitted():
    """reviews-v2 talks to ratings; a ratings-v2 deployed later gets none of its rights."""
    today = ["productpage-v1", "reviews-v1", "reviews-v2", "ratings-v1"]
    rows = [
        _bookinfo_obs("productpage-v1", "reviews-v1"),
        _bookinfo_obs("productpage-v1", "reviews-v2"),
        _bookinfo_obs("reviews-v2", "ratings-v1"),
    ]
    rec = recommend(
        pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS)), _bookinfo_inventory(today)
    )
    tomorrow = _bookinfo_inventory([*today, "ratings-v2"])
    ps = compile_policies(rec.policies, tomorrow)
    ep = {
        p.labels["app"] + "-" + p.labels["version"]: endpoint_for_pod(p, tomorrow)
        for p in tomorrow.pods
    }
    assert ps.decide(ep["reviews-v2"], ep["ratings-v1"], 9080, "TCP").is_allowed
    assert ps.decide(ep["productpage-v1"], ep["reviews-v2"], 9080, "TCP").is_allowed
    # ratings-v2 carries version=v2 like reviews-v2, but not app=reviews:
    assert not ps.decide(ep["ratings-v2"], ep["ratings-v1"], 9080, "TCP").is_allowed
    assert not ps.decide(ep["productpage-v1"], ep["ratings-v2"], 9080, "TCP").is_allowed
    texts = {selector_labels_text(p.pod_selector) for p in rec.policies}
    assert "app=reviews,version=v2" in texts
    assert "version=v2" not in texts
