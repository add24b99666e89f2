"""Smallest exact stable selectors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.labels import is_ephemeral_key, matches_selector
from recommender.model import LabelSelector
from recommender.selectors import (
    common_pairs,
    cover_selectors,
    find_selector,
    select_exactly,
    selector_labels_text,
)


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


def test_group_without_common_label_has_no_selector():
    assert find_selector([{"app": "a"}, {"app": "b"}], [{"app": "c"}]) is None


def test_select_exactly_takes_the_whole_universe():
    universe = [{"app": "a", "tier": "x"}, {"app": "b", "tier": "x"}, {"app": "c"}]
    choice = select_exactly(universe[:2], universe)
    assert choice.selector.match_labels == (("tier", "x"),)


def test_cover_selectors_combines_what_it_can():
    universe = [{"app": "a", "tier": "api"}, {"app": "b", "tier": "api"}, {"app": "c"},
                {"app": "d", "tier": "api2"}]
    cover = cover_selectors([universe[0], universe[1], universe[3]], universe)
    texts = [selector_labels_text(s) for s, _ in cover]
    assert texts == ["tier=api", "app=d"]


def test_selector_text_for_empty_selector():
    assert selector_labels_text(LabelSelector()) == "(all pods)"


_label_sets = st.lists(
    st.dictionaries(st.sampled_from(["app", "tier", "track", "pod-template-hash", "team"]),
                    st.sampled_from(["a", "b", "c"]), max_size=4),
    min_size=1, max_size=8,
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
