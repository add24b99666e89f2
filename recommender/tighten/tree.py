"""The output tree: the same layout as ``netpol recommend``, with ``TIGHTEN.md``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from recommender.model import NetworkPolicy
from recommender.policy_io.policy_writer import render_tree


def render_tighten_tree(policies: Sequence[NetworkPolicy], report_md: str) -> dict[str, str]:
    """``{relative path: text}``: ``<ns>/<name>.yaml``, kustomizations and ``TIGHTEN.md``.

    Policies are written in namespace/name order, so the bytes do not depend
    on how the current set was split into files.
    """
    ordered = sorted(policies, key=lambda p: (p.namespace, p.name))
    files = render_tree([_clean(p) for p in ordered], "")
    files.pop("SUMMARY.md", None)
    files["TIGHTEN.md"] = report_md
    return dict(sorted(files.items()))


def _clean(p: NetworkPolicy) -> NetworkPolicy:
    """Where a policy was read from is not part of what is written."""
    return replace(p, source=None)
