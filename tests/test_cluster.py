"""CommunicationGrouper: exact grouping, Jaccard merging, scikit-learn conventions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import estimator_checks_generator

from recommender.recommend.groups import (
    CommunicationGrouper,
    build_profile_matrix,
    canonical_labels,
    jaccard_distances,
)


def _check_name(check):
    return getattr(check, "func", check).__name__


#: scikit-learn's generic estimator checks. The array-API checks are left out: the
#: estimator does not claim array-API support, and scikit-learn would only skip them
#: (they need SCIPY_ARRAY_API set before import).
SKLEARN_CHECKS = [
    (est, check)
    for base in (CommunicationGrouper(), CommunicationGrouper(distance_threshold=0.5))
    for est, check in estimator_checks_generator(base, mark=None)
    if "array_api" not in _check_name(check)
]


@pytest.mark.parametrize(
    ("estimator", "check"),
    SKLEARN_CHECKS,
    ids=[f"{e!r}-{_check_name(c)}" for e, c in SKLEARN_CHECKS],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _matrix(rows):
    return np.array(rows, dtype=bool)


def test_identical_profiles_share_a_group_and_nothing_else_does():
    X = _matrix([[1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
    labels = CommunicationGrouper().fit(X).labels_
    assert labels.tolist() == [0, 1, 0, 2]


def test_empty_profiles_group_together():
    X = _matrix([[0, 0], [1, 0], [0, 0]])
    assert CommunicationGrouper().fit(X).labels_.tolist() == [0, 1, 0]


def test_merge_similar_joins_profiles_closer_than_threshold():
    # rows 0 and 1 differ by one of 10 edges (Jaccard 0.1); row 2 is unrelated.
    base = [1] * 9 + [0] * 3
    near = [1] * 10 + [0] * 2
    other = [0] * 10 + [1, 1]
    X = _matrix([base, near, other])
    assert CommunicationGrouper(distance_threshold=0.2).fit(X).labels_.tolist() == [0, 0, 1]
    assert CommunicationGrouper(distance_threshold=0.05).fit(X).labels_.tolist() == [0, 1, 2]


def test_complete_linkage_does_not_chain():
    # a~b and b~c are close, a and c are far: complete linkage keeps a and c apart.
    a = [1, 1, 1, 0, 0]
    b = [0, 1, 1, 1, 0]
    c = [0, 0, 1, 1, 1]
    labels = CommunicationGrouper(distance_threshold=0.6).fit(_matrix([a, b, c])).labels_
    assert labels[0] != labels[2]
    single = CommunicationGrouper(distance_threshold=0.6, linkage="single").fit(_matrix([a, b, c]))
    assert single.labels_.tolist() == [0, 0, 0]


def test_counts_matrix_means_edge_when_positive():
    X = np.array([[3, 0], [1, 0], [0, 7]])
    assert CommunicationGrouper().fit(X).labels_.tolist() == [0, 0, 1]


def test_fit_is_deterministic_and_returns_self():
    rng = np.random.default_rng(0)
    X = rng.random((30, 12)) > 0.7
    g = CommunicationGrouper(distance_threshold=0.4)
    assert g.fit(X) is g
    assert np.array_equal(g.labels_, CommunicationGrouper(distance_threshold=0.4).fit(X).labels_)
    assert g.n_groups_ == len(set(g.labels_.tolist()))


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x"])
def test_bad_threshold_is_rejected(bad):
    with pytest.raises(ValueError, match="distance_threshold"):
        CommunicationGrouper(distance_threshold=bad).fit(np.ones((2, 2)))


def test_jaccard_distance_and_helpers():
    d = jaccard_distances(_matrix([[1, 0], [1, 1]]))
    assert d[0, 1] == pytest.approx(0.5)
    assert canonical_labels([3, 1, 3]).tolist() == [0, 1, 0]
    rows, cols, m = build_profile_matrix({"w2": frozenset({"e1"}), "w1": frozenset()})
    assert rows == ["w1", "w2"]
    assert cols == ["e1"]
    assert m.tolist() == [[False], [True]]
