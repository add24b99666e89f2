"""Smallest stable label selector that selects exactly a set of workloads.

A workload is (namespace, stable labels), so every pod of one workload carries
the same stable labels. A selector built only from stable keys therefore
selects a pod exactly when it selects the pod's workload, and the search can
work on the distinct stable label sets of a namespace instead of on pods.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from recommender.labels import CONVENTIONAL_KEYS, is_ephemeral_key, matches_selector
from recommender.model import LabelRequirement, LabelSelector

LabelSet = Mapping[str, str]

#: Most ``matchLabels`` pairs tried before falling back to ``DoesNotExist`` terms.
MAX_SELECTOR_PAIRS = 4


@dataclass(frozen=True)
class SelectorChoice:
    """A selector plus how it was found (``exact`` or ``absence`` of keys)."""

    selector: LabelSelector
    method: str


def key_rank(key: str) -> tuple[int, str]:
    """Sort key that puts conventional keys first, then the rest by name.

    >>> sorted(["zone", "app", "app.kubernetes.io/name"], key=key_rank)
    ['app.kubernetes.io/name', 'app', 'zone']
    """
    if key in CONVENTIONAL_KEYS:
        return (CONVENTIONAL_KEYS.index(key), key)
    return (len(CONVENTIONAL_KEYS), key)


def common_pairs(targets: Sequence[LabelSet]) -> list[tuple[str, str]]:
    """Stable (key, value) pairs every target carries, in preference order.

    >>> common_pairs([{"app": "a", "tier": "x"}, {"app": "a", "tier": "y"}])
    [('app', 'a')]
    """
    if not targets:
        return []
    first = targets[0]
    pairs = [
        (k, v)
        for k, v in first.items()
        if not is_ephemeral_key(k) and all(t.get(k) == v for t in targets[1:])
    ]
    return sorted(pairs, key=lambda kv: key_rank(kv[0]))


def _selects_none(selector: LabelSelector, others: Sequence[LabelSet]) -> bool:
    return not any(matches_selector(selector, o) for o in others)


def find_selector(
    targets: Sequence[LabelSet], others: Sequence[LabelSet]
) -> SelectorChoice | None:
    """Smallest selector matching every label set in ``targets`` and none in ``others``.

    Pairs on conventional keys are preferred; among selectors of one size the
    first in preference order wins, so the choice is deterministic. When no
    ``matchLabels`` selector exists, one ``DoesNotExist`` term per key that only
    the other workloads carry is tried. Returns None when nothing is exact, in
    which case the caller splits the group.

    >>> web, api = {"app": "web"}, {"app": "api"}
    >>> find_selector([web], [api]).selector.match_labels
    (('app', 'web'),)
    >>> find_selector([web, api], []) is None
    True
    >>> find_selector([web, api], [{"app": "db"}]) is None
    True
    """
    targets = list(targets)
    if not targets:
        return None
    pairs = common_pairs(targets)
    if not pairs and not others:
        return None  # an empty selector would select every pod: never chosen
    for size in range(1, min(len(pairs), MAX_SELECTOR_PAIRS) + 1):
        for combo in itertools.combinations(pairs, size):
            selector = LabelSelector(match_labels=tuple(sorted(combo)))
            if _selects_none(selector, others):
                return SelectorChoice(selector, "exact")
    return _absence_selector(targets, pairs, others)


def _absence_selector(
    targets: Sequence[LabelSet], pairs: Sequence[tuple[str, str]], others: Sequence[LabelSet]
) -> SelectorChoice | None:
    """All common pairs plus ``DoesNotExist`` on keys no target carries."""
    target_keys = set().union(*(t.keys() for t in targets))
    base = LabelSelector(match_labels=tuple(sorted(pairs)) or None)
    rivals = [o for o in others if matches_selector(base, o)]
    extra = sorted(
        {k for o in rivals for k in o if k not in target_keys and not is_ephemeral_key(k)},
        key=key_rank,
    )
    if not extra:
        return None
    exprs = tuple(LabelRequirement(k, "DoesNotExist") for k in extra)
    selector = LabelSelector(match_labels=base.match_labels, match_expressions=exprs)
    if not _selects_none(selector, others) or selector.is_empty:
        return None
    return SelectorChoice(selector, "absence")


def select_exactly(
    targets: Collection[LabelSet], universe: Sequence[LabelSet]
) -> SelectorChoice | None:
    """:func:`find_selector` where ``universe`` holds targets and others alike."""
    wanted = [dict(t) for t in targets]
    others = [u for u in universe if dict(u) not in wanted]
    return find_selector(wanted, others)


def selector_labels_text(selector: LabelSelector) -> str:
    """Readable form, ``app=web,!debug``.

    >>> sel = LabelSelector((("app", "web"),), (LabelRequirement("debug", "DoesNotExist"),))
    >>> selector_labels_text(sel)
    'app=web,!debug'
    """
    parts = [f"{k}={v}" for k, v in selector.match_labels or ()]
    for req in selector.match_expressions or ():
        if req.operator == "DoesNotExist":
            parts.append(f"!{req.key}")
        elif req.operator == "Exists":
            parts.append(req.key)
        else:
            parts.append(f"{req.key} {req.operator.lower()} ({','.join(req.values)})")
    return ",".join(parts) or "(all pods)"


def cover_selectors(
    targets: Sequence[LabelSet], universe: Sequence[LabelSet]
) -> list[tuple[LabelSelector, list[int]]]:
    """Few exact selectors that together select exactly ``targets`` within ``universe``.

    First one selector for all targets; else a greedy cover by single label
    pairs that select only targets (largest coverage first, conventional keys
    on ties); the rest get one exact selector each. Returns (selector, target
    indexes) pairs; a target with no exact selector at all is left out.

    >>> u = [{"app": "a", "tier": "api"}, {"app": "b", "tier": "api"}, {"app": "c"}, {"app": "d"}]
    >>> [(selector_labels_text(s), ix) for s, ix in cover_selectors(u[:3], u)]
    [('tier=api', [0, 1]), ('app=c', [2])]
    """
    wanted = [dict(t) for t in targets]
    others = [dict(u) for u in universe if dict(u) not in wanted]
    whole = find_selector(wanted, others)
    if whole is not None:
        return [(whole.selector, list(range(len(wanted))))]
    left = set(range(len(wanted)))
    out: list[tuple[LabelSelector, list[int]]] = []
    while left:
        best = _best_pair(wanted, others, left)
        if best is None:
            break
        pair, covered = best
        out.append((LabelSelector(match_labels=(pair,)), covered))
        left -= set(covered)
    for i in sorted(left):
        one = find_selector([wanted[i]], others + [w for j, w in enumerate(wanted) if j != i])
        if one is not None:
            out.append((one.selector, [i]))
    return out


def _best_pair(
    wanted: list[dict[str, str]], others: list[dict[str, str]], left: set[int]
) -> tuple[tuple[str, str], list[int]] | None:
    """The stable pair selecting no other workload and the most uncovered targets (>= 2)."""
    pairs = sorted({(k, v) for i in left for k, v in wanted[i].items() if not is_ephemeral_key(k)},
                   key=lambda kv: (key_rank(kv[0]), kv[1]))
    best: tuple[tuple[str, str], list[int]] | None = None
    for k, v in pairs:
        if any(o.get(k) == v for o in others):
            continue
        covered = [i for i in sorted(left) if wanted[i].get(k) == v]
        if len(covered) >= 2 and (best is None or len(covered) > len(best[1])):
            best = ((k, v), covered)
    return best
