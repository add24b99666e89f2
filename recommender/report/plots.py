"""Pictures for people: profile similarity of workloads, as a heatmap with a dendrogram order.

Matplotlib is imported lazily with the non-interactive ``Agg`` backend unless a
backend is already chosen (a notebook's inline backend is kept).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.recommend.groups import build_profile_matrix, jaccard_distances
from recommender.recommend.steps import edges_of
from recommender.recommend.summary import peer_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from recommender.recommend.pipeline import Recommendation


def workload_profiles(rec: Recommendation) -> dict[Hashable, frozenset[Hashable]]:
    """Each in-scope workload's learned edge set (its communication profile)."""
    edges = edges_of(rec.table, rec.namespaces)
    return {key: frozenset(e) for key, e in edges.items()}


def similarity_order(distances: np.ndarray[Any, Any]) -> list[int]:
    """Leaf order of an average-linkage dendrogram, so similar rows sit together.

    >>> similarity_order(np.array([[0, 1, .1], [1, 0, 1], [.1, 1, 0]]))
    [1, 0, 2]
    """
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(distances) < 3:
        return list(range(len(distances)))
    condensed = squareform(np.asarray(distances, dtype=float), checks=False)
    return [int(i) for i in leaves_list(linkage(condensed, method="average"))]


def plot_profile_similarity(rec: Recommendation, title: str | None = None) -> Figure:
    """Heatmap of 1 - Jaccard distance between workload profiles, dendrogram-ordered.

    Dark blocks on the diagonal are workloads that talk to the same peers on the
    same ports: the communication groups ``--merge-similar`` would join.
    """
    import matplotlib

    if matplotlib.get_backend().lower() in ("", "agg"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, _, matrix = build_profile_matrix(workload_profiles(rec))
    similarity = 1.0 - jaccard_distances(matrix)
    order = similarity_order(1.0 - similarity)
    labels = [peer_text(str(rows[i]), rec.index) for i in order]
    size = max(4.0, 0.28 * len(rows) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(similarity[np.ix_(order, order)], cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_title(title or "Workload profile similarity (1 - Jaccard distance)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.subplots_adjust(left=0.3, bottom=0.3)
    return fig
