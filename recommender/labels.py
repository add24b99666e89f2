"""Label handling: stable-label filtering, canonical encoding, selector matching.

Selector semantics follow ``metav1.LabelSelector``: ``matchLabels`` and
``matchExpressions`` are ANDed; an empty or null selector selects everything.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import orjson

from recommender.model import LabelRequirement, LabelSelector

# ---------------------------------------------------------------------------
# Label syntax, as the API server checks it (apimachinery util/validation:
# IsQualifiedName, IsValidLabelValue, IsDNS1123Label, IsDNS1123Subdomain).
# The patterns serve Python and SQL (RE2 and Java) alike: no look-around.
# ---------------------------------------------------------------------------

#: "name part must consist of alphanumeric characters, '-', '_' or '.', and must
#: start and end with an alphanumeric character"; at most 63 characters.
LABEL_NAME_RE = "[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
#: "a lowercase RFC 1123 label must consist of lower case alphanumeric characters
#: or '-', and must start and end with an alphanumeric character"; at most 63.
DNS1123_LABEL_RE = "[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"
#: Dot-separated RFC 1123 labels; at most 253 characters (checked apart).
DNS1123_SUBDOMAIN_RE = "[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
#: A qualified name: an optional DNS subdomain prefix and ``/``, then a name part.
LABEL_KEY_RE = f"(?:{DNS1123_SUBDOMAIN_RE}/)?{LABEL_NAME_RE}"
#: "a valid label must be an empty string or consist of alphanumeric characters,
#: '-', '_' or '.', and must start and end with an alphanumeric character".
LABEL_VALUE_RE = f"(?:{LABEL_NAME_RE})?"
_LABEL_KEY = re.compile(LABEL_KEY_RE)
_LABEL_VALUE = re.compile(LABEL_VALUE_RE)


def is_valid_label_key(key: str) -> bool:
    """A label key the API server accepts: ``[prefix/]name``.

    >>> is_valid_label_key("app.kubernetes.io/name"), is_valid_label_key('role"')
    (True, False)
    >>> is_valid_label_key("Example.com/app"), is_valid_label_key("a" * 64)
    (False, False)
    """
    prefix, slash, _ = key.rpartition("/")
    if slash and len(prefix) > 253:
        return False
    return _LABEL_KEY.fullmatch(key) is not None


def is_valid_label_value(value: str) -> bool:
    """A label value the API server accepts (empty allowed, at most 63).

    >>> is_valid_label_value(""), is_valid_label_value("v1.2_x"), is_valid_label_value("a b")
    (True, True, False)
    """
    return _LABEL_VALUE.fullmatch(value) is not None


#: Labels that change per rollout, per pod or per job run (FORMATS.md 2.7.2).
#: They never enter a selector or a workload identity.
EPHEMERAL_LABEL_KEYS: frozenset[str] = frozenset(
    {
        "pod-template-hash",
        "controller-revision-hash",
        "pod-template-generation",
        "statefulset.kubernetes.io/pod-name",
        "apps.kubernetes.io/pod-index",
        "batch.kubernetes.io/job-name",
        "job-name",
        "batch.kubernetes.io/controller-uid",
        "controller-uid",
        "batch.kubernetes.io/job-completion-index",
    }
)

#: Key prefixes Cilium's default identity label filter drops (FORMATS.md 2.1.4).
#: Hubble flows never carry them, so selectors built from inventory labels must
#: drop them too, or flow and inventory identities would disagree.
CILIUM_EXCLUDED_PREFIXES: tuple[str, ...] = (
    "io.kubernetes",
    "kubernetes.io",
    "beta.kubernetes.io",
    "k8s.io",
    "annotation.",
    "etcd_node",
    "topology.kubernetes.io",
)

#: Cilium pseudo labels: identity metadata, not pod labels.
CILIUM_PSEUDO_PREFIXES: tuple[str, ...] = (
    "io.kubernetes.pod.namespace",
    "io.cilium.k8s.policy.",
    "io.cilium.k8s.namespace.labels.",
    "io.cilium.",
)

#: Preferred keys for readable selectors, in order.
CONVENTIONAL_KEYS: tuple[str, ...] = (
    "app.kubernetes.io/name",
    "app",
    "k8s-app",
    "app.kubernetes.io/component",
    "component",
    "tier",
    "app.kubernetes.io/instance",
    "name",
)

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


def is_ephemeral_key(key: str) -> bool:
    """True for labels that must never identify a workload.

    >>> is_ephemeral_key("pod-template-hash"), is_ephemeral_key("app")
    (True, False)
    >>> is_ephemeral_key("topology.kubernetes.io/zone")
    True
    """
    if key in EPHEMERAL_LABEL_KEYS:
        return True
    if key.startswith(CILIUM_PSEUDO_PREFIXES):
        return True
    return _is_cilium_excluded(key)


def _is_cilium_excluded(key: str) -> bool:
    """Cilium's default filter: excluded prefixes plus ``.*beta.kubernetes.io``.

    ``app.kubernetes.io/*`` is kept (Cilium includes it explicitly).

    >>> _is_cilium_excluded("app.kubernetes.io/name"), _is_cilium_excluded("kubernetes.io/os")
    (False, True)
    >>> _is_cilium_excluded("failure-domain.beta.kubernetes.io/zone")
    True
    """
    return key.startswith(CILIUM_EXCLUDED_PREFIXES) or "beta.kubernetes.io" in key


def stable_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Drop ephemeral and Cilium-excluded keys; return a sorted copy.

    >>> stable_labels({"app": "web", "pod-template-hash": "5d8f", "tier": "fe"})
    {'app': 'web', 'tier': 'fe'}
    """
    return {k: labels[k] for k in sorted(labels) if not is_ephemeral_key(k)}


def encode_labels(labels: Mapping[str, str]) -> str:
    """Canonical JSON of a label map: sorted keys, no spaces.

    >>> encode_labels({"b": "2", "a": "1"})
    '{"a":"1","b":"2"}'
    """
    return orjson.dumps(dict(labels), option=orjson.OPT_SORT_KEYS).decode()


def decode_labels(text: str | None) -> dict[str, str]:
    """Inverse of :func:`encode_labels`; None or "" gives an empty map."""
    if not text:
        return {}
    value = orjson.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"labels must be a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in value.items()}


def format_labels(labels: Mapping[str, str]) -> str:
    """Human form ``k=v,k2=v2`` in key order.

    >>> format_labels({"tier": "db", "app": "pg"})
    'app=pg,tier=db'
    """
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def matches_requirement(req: LabelRequirement, labels: Mapping[str, str]) -> bool:
    """Evaluate one ``matchExpressions`` entry.

    ``NotIn`` and ``DoesNotExist`` match objects that lack the key, as in
    apimachinery's ``labels.Requirement.Matches``.

    >>> matches_requirement(LabelRequirement("env", "NotIn", ("prod",)), {})
    True
    >>> matches_requirement(LabelRequirement("env", "In", ("prod",)), {})
    False
    """
    present = req.key in labels
    if req.operator == "In":
        return present and labels[req.key] in req.values
    if req.operator == "NotIn":
        return not present or labels[req.key] not in req.values
    if req.operator == "Exists":
        return present
    if req.operator == "DoesNotExist":
        return not present
    raise ValueError(f"unknown label selector operator {req.operator!r}")


def matches_selector(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """True when ``labels`` satisfy every matchLabels pair and every expression.

    An empty selector (``{}``) and one with null fields select everything.

    >>> matches_selector(LabelSelector(), {"a": "b"})
    True
    >>> matches_selector(LabelSelector(match_labels=(("app", "web"),)), {"app": "db"})
    False
    """
    for key, value in selector.match_labels or ():
        if labels.get(key) != value:
            return False
    return all(matches_requirement(r, labels) for r in selector.match_expressions or ())


def namespace_labels(name: str, labels: Mapping[str, str] | None) -> dict[str, str]:
    """Namespace labels with ``kubernetes.io/metadata.name`` always present.

    The API server sets that label on every namespace since Kubernetes 1.21,
    even when an inventory dump leaves it out.

    >>> namespace_labels("shop", {"team": "a"})
    {'team': 'a', 'kubernetes.io/metadata.name': 'shop'}
    """
    out = dict(labels or {})
    out[NAMESPACE_NAME_LABEL] = name
    return out
