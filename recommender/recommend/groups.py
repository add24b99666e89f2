"""Communication groups: profile matrices and a scikit-learn style grouper.

A workload's profile is its set of (direction, peer, port, protocol) edges. By
default workloads with identical profiles form one group (no added privilege);
with ``distance_threshold`` near-identical profiles are merged by agglomerative
clustering on the Jaccard distance between edge sets.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import AgglomerativeClustering
from sklearn.utils.validation import validate_data

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def build_profile_matrix(
    profiles: Mapping[Hashable, frozenset[Hashable]],
) -> tuple[list[Hashable], list[Hashable], BoolArray]:
    """Binary matrix with one row per workload and one column per edge.

    Rows and columns are sorted by ``repr`` so equal input gives an equal matrix.

    >>> rows, cols, m = build_profile_matrix({"b": frozenset({1}), "a": frozenset({1, 2})})
    >>> rows, cols, m.astype(int).tolist()
    (['a', 'b'], [1, 2], [[1, 1], [1, 0]])
    """
    rows = sorted(profiles, key=repr)
    cols = sorted({e for edges in profiles.values() for e in edges}, key=repr)
    index = {c: i for i, c in enumerate(cols)}
    matrix = np.zeros((len(rows), len(cols)), dtype=bool)
    for r, row in enumerate(rows):
        for edge in profiles[row]:
            matrix[r, index[edge]] = True
    return rows, cols, matrix


def jaccard_distances(matrix: BoolArray) -> NDArray[np.float64]:
    """Pairwise Jaccard distance of boolean rows; two empty rows are at distance 0.

    >>> jaccard_distances(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=bool)).tolist()
    [[0.0, 0.5, 1.0], [0.5, 0.0, 1.0], [1.0, 1.0, 0.0]]
    """
    m = matrix.astype(np.float64)
    inter = m @ m.T
    sizes = m.sum(axis=1)
    union = sizes[:, None] + sizes[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.where(union > 0, 1.0 - inter / np.maximum(union, 1.0), 0.0)
    np.fill_diagonal(dist, 0.0)
    return np.asarray(dist, dtype=np.float64)


def canonical_labels(raw: Sequence[int] | NDArray[Any]) -> IntArray:
    """Renumber cluster ids by first appearance: ``[5, 5, 2, 7] -> [0, 0, 1, 2]``.

    >>> canonical_labels([5, 5, 2, 7]).tolist()
    [0, 0, 1, 2]
    """
    seen: dict[int, int] = {}
    return np.array([seen.setdefault(int(x), len(seen)) for x in raw], dtype=np.int64)


class CommunicationGrouper(ClusterMixin, BaseEstimator):  # type: ignore[misc]
    """Group rows of a profile matrix (one row per workload, one column per edge).

    An entry greater than zero marks an edge (so a matrix of connection counts
    works too); anything else is "no edge". With ``distance_threshold=None``
    only rows with the same edge set share a group. With a threshold ``T``,
    groups of identical rows are merged by agglomerative clustering on the
    Jaccard distance of their edge sets: two groups merge when their
    ``linkage`` distance is below ``T`` (complete linkage by default, so every
    pair in a merged group is closer than ``T``). The result is deterministic:
    labels are numbered by first appearance in row order.

    Parameters
    ----------
    distance_threshold
        None or 0 for exact grouping, else the Jaccard distance in ``(0, 1]``
        below which profiles merge.
    linkage
        ``complete``, ``average`` or ``single``.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Group id of every row.
    n_groups_ : int
        Number of groups.
    n_features_in_ : int
        Number of columns seen by ``fit``.
    """

    def __init__(self, distance_threshold: float | None = None, linkage: str = "complete") -> None:
        self.distance_threshold = distance_threshold
        self.linkage = linkage

    def fit(self, X: Any, y: Any = None) -> CommunicationGrouper:  # noqa: N803 - sklearn API
        """Compute ``labels_`` for ``X`` and return ``self``."""
        X = validate_data(self, X, dtype="numeric", ensure_min_samples=1)
        self._check_params()
        edges = np.asarray(X > 0, dtype=bool)
        exact_ids = canonical_labels(np.unique(edges, axis=0, return_inverse=True)[1].ravel())
        labels = exact_ids
        if self.distance_threshold and exact_ids.max() > 0:
            labels = self._merge(edges, exact_ids)
        self.labels_ = labels
        self.n_groups_ = int(labels.max()) + 1
        return self

    def _check_params(self) -> None:
        t = self.distance_threshold
        if t is not None and not (isinstance(t, int | float) and 0 <= t <= 1):
            raise ValueError(f"distance_threshold must be None or in [0, 1], got {t!r}")
        if self.linkage not in ("complete", "average", "single"):
            raise ValueError(f"linkage must be complete, average or single, got {self.linkage!r}")

    def _merge(self, edges: BoolArray, exact_ids: IntArray) -> IntArray:
        """Cluster one representative row per exact group, then map back."""
        reps = np.array([np.flatnonzero(exact_ids == g)[0] for g in range(exact_ids.max() + 1)])
        model = AgglomerativeClustering(
            n_clusters=None,
            metric="precomputed",
            linkage=self.linkage,
            distance_threshold=float(self.distance_threshold or 0.0),
        )
        rep_labels = model.fit(jaccard_distances(edges[reps])).labels_
        return canonical_labels(rep_labels[exact_ids])
