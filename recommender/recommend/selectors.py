"""Exact stable label selectors that keep naming the application.

A workload is (namespace, stable labels), so every pod of one workload carries
the same stable labels. A selector built only from stable keys therefore
selects a pod exactly when it selects the pod's workload, and the search can
work on the distinct stable label sets of a namespace instead of on pods.

Exact on today's inventory is not enough: ``version=v2`` may be the smallest
selector of reviews-v2 today and still select a ratings-v2 deployed tomorrow.
So the rule (docs/quality.md, "Selectors and future workloads") is:

1. When the workloads share a naming label (:data:`NAMING_KEYS`, most preferred
   first, then :data:`SECONDARY_NAMING_KEYS`), the selector always includes it.
2. Otherwise, when they all carry one naming key with different values (a group
   of several applications), the selector includes ``key In (values)``.
3. Then the fewest further stable ``matchLabels`` pairs that make it exact on the
   inventory are added (conventional keys first, so the choice is deterministic).
4. Only workloads without a naming key fall back to the smallest distinguishing
   set. A future workload is then admitted only if it reuses an application
   name the selector already admits.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from recommender.labels import CONVENTIONAL_KEYS, is_ephemeral_key, matches_selector
from recommender.model import LabelRequirement, LabelSelector

LabelSet = Mapping[str, str]

#: Most ``matchLabels`` pairs tried beyond the naming part before falling back to
#: ``DoesNotExist`` terms.
MAX_SELECTOR_PAIRS = 4

#: Keys that name the application: the Kubernetes recommended label, then the older
#: conventions, most preferred first.
NAMING_KEYS: tuple[str, ...] = ("app.kubernetes.io/name", "app", "k8s-app", "name")

#: ``app.kubernetes.io/instance`` names one installation of an application (a Helm
#: release), so it keeps other releases out: a naming key, but only when the workloads
#: share none of :data:`NAMING_KEYS` (a group spanning one release's applications).
#: ``app.kubernetes.io/component`` is no naming key: it names a role ("database",
#: "controller", "primary") whose values recur across unrelated applications.
SECONDARY_NAMING_KEYS: tuple[str, ...] = ("app.kubernetes.io/instance",)


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


def naming_selector(targets: Sequence[LabelSet]) -> LabelSelector | None:
    """The part of every selector of ``targets`` that names their application(s).

    A naming label all targets share, else ``key In (values)`` over a primary
    naming key every target carries, else None (no naming key: minimal search).

    >>> naming_selector([{"app": "reviews", "version": "v2"}]).match_labels
    (('app', 'reviews'),)
    >>> naming_selector([{"app": "b"}, {"app": "a"}]).match_expressions
    (LabelRequirement(key='app', operator='In', values=('a', 'b')),)
    >>> naming_selector([{"app": "a"}, {"k8s-app": "b"}]) is None
    True
    """
    if not targets:
        return None
    for key in (*NAMING_KEYS, *SECONDARY_NAMING_KEYS):
        values = {t.get(key) for t in targets}
        if len(values) == 1 and None not in values:
            return LabelSelector(match_labels=((key, str(values.pop())),))
    for key in NAMING_KEYS:
        if all(key in t for t in targets):
            req = LabelRequirement(key, "In", tuple(sorted({t[key] for t in targets})))
            return LabelSelector(match_expressions=(req,))
    return None


def _joined(
    naming: LabelSelector | None,
    pairs: Sequence[tuple[str, str]],
    exprs: Sequence[LabelRequirement] = (),
) -> LabelSelector:
    """``naming`` ANDed with further pairs and expressions, in sorted order."""
    labels = sorted({*(naming.match_labels or () if naming else ()), *pairs})
    reqs = (*(naming.match_expressions or () if naming else ()), *exprs)
    return LabelSelector(match_labels=tuple(labels) or None, match_expressions=reqs or None)


def _selects_none(selector: LabelSelector, others: Sequence[LabelSet]) -> bool:
    return not any(matches_selector(selector, o) for o in others)


def find_selector(targets: Sequence[LabelSet], others: Sequence[LabelSet]) -> SelectorChoice | None:
    """Exact selector matching every label set in ``targets`` and none in ``others``.

    The naming part (:func:`naming_selector`) is always included; then the fewest
    further common pairs, conventional keys first, so the choice is deterministic.
    When no such selector exists, one ``DoesNotExist`` term per key that only the
    other workloads carry is tried. Returns None when nothing is exact, in which
    case the caller splits the group.

    >>> web, api = {"app": "web", "v": "1"}, {"app": "api", "v": "2"}
    >>> find_selector([web], [api]).selector.match_labels
    (('app', 'web'),)
    >>> find_selector([{"v": "1"}, {"v": "2"}], []) is None
    True
    >>> find_selector([{"v": "1"}, {"v": "2"}], [{"v": "3"}]) is None
    True
    """
    targets = list(targets)
    if not targets:
        return None
    pairs = common_pairs(targets)
    naming = naming_selector(targets)
    if naming is None and not pairs and not others:
        return None  # an empty selector would select every pod: never chosen
    rest = [p for p in pairs if naming is None or p not in (naming.match_labels or ())]
    for size in range(0 if naming else 1, min(len(rest), MAX_SELECTOR_PAIRS) + 1):
        for combo in itertools.combinations(rest, size):
            selector = _joined(naming, combo)
            if _selects_none(selector, others):
                return SelectorChoice(selector, "exact")
    return _absence_selector(targets, _joined(naming, pairs), others)


def _absence_selector(
    targets: Sequence[LabelSet], base: LabelSelector, others: Sequence[LabelSet]
) -> SelectorChoice | None:
    """``base`` (naming part, common pairs) plus ``DoesNotExist`` on keys no target carries."""
    target_keys = set().union(*(t.keys() for t in targets))
    rivals = [o for o in others if matches_selector(base, o)]
    extra = sorted(
        {k for o in rivals for k in o if k not in target_keys and not is_ephemeral_key(k)},
        key=key_rank,
    )
    if not extra:
        return None
    selector = _joined(base, (), tuple(LabelRequirement(k, "DoesNotExist") for k in extra))
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
    on ties), each ANDed with the naming part of the targets it covers; the rest
    get one exact selector each. Returns (selector, target indexes) pairs; a
    target with no exact selector at all is left out.

    >>> u = [{"tier": "api", "team": "a"}, {"tier": "api", "team": "b"}, {"team": "c"},
    ...      {"team": "d"}]
    >>> [(selector_labels_text(s), ix) for s, ix in cover_selectors(u[:3], u)]
    [('tier=api', [0, 1]), ('team=c', [2])]
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
        out.append((_joined(naming_selector([wanted[i] for i in covered]), (pair,)), covered))
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
    pairs = sorted(
        {(k, v) for i in left for k, v in wanted[i].items() if not is_ephemeral_key(k)},
        key=lambda kv: (key_rank(kv[0]), kv[1]),
    )
    best: tuple[tuple[str, str], list[int]] | None = None
    for k, v in pairs:
        if any(o.get(k) == v for o in others):
            continue
        covered = [i for i in sorted(left) if wanted[i].get(k) == v]
        if len(covered) >= 2 and (best is None or len(covered) > len(best[1])):
            best = ((k, v), covered)
    return best
