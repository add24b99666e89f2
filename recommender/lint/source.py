"""Read policy files for lint, keeping invalid policies and the YAML node of each document.

Unlike :func:`recommender.policy_io.policy_yaml.load_policies`, an invalid policy does
not stop the run: lint reports its findings (``NP1xx``: unknown fields, wrong
types, what the API server's validation rejects) and judges the valid policies.
What no policy check can judge stays an input error (exit 2): invalid YAML, a
duplicate key, a document whose ``kind`` or ``apiVersion`` is not a string. Each
document keeps its YAML node so a finding can name the line of the field it is
about (:func:`recommender.policy_io.strict_yaml.locate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import InputError, PolicyError
from recommender.lint.kinds import KindDoc
from recommender.model import NetworkPolicy
from recommender.policy_io.policy_yaml import classify_object, located, parse_policy, policy_files
from recommender.policy_io.strict_yaml import item_node, locate, read_documents
from recommender.semantics.cilium import is_cilium_policy
from recommender.semantics.cnp_rules import is_cluster_policy
from recommender.semantics.policy_fields import policy_findings
from recommender.semantics.validate import Finding


@dataclass(frozen=True)
class PolicyDoc:
    """One NetworkPolicy object as read: where, the raw dict, and the model when valid."""

    file: str
    doc: int  # 1-based document index in the file
    prefix: str  # "items[3]." inside a List, else ""
    raw: Any
    policy: NetworkPolicy | None  # None when the API server would reject it
    findings: tuple[Finding, ...]  # validation findings (NP1xx)
    node: Any = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        """``namespace/name`` as far as the raw object tells."""
        if self.policy is not None:
            return self.policy.key
        meta = self.raw.get("metadata") if isinstance(self.raw, dict) else None
        meta = meta if isinstance(meta, dict) else {}
        return f"{meta.get('namespace') or '?'}/{meta.get('name') or '?'}"

    def line(self, path: str = "") -> int | None:
        """1-based line of a field path (``spec.ingress[0].from[1]``) or of the object."""
        return locate(self.node, path)


def read_policy_docs(
    paths: Sequence[str],
    default_namespace: str | None = None,
    kinds: list[KindDoc] | None = None,
) -> tuple[list[PolicyDoc], int]:
    """Every NetworkPolicy document in ``paths``, valid or not; plus the count of other objects.

    With ``kinds``, CiliumNetworkPolicy and ClusterNetworkPolicy objects are
    appended there (and not counted as skipped).

    Raises
    ------
    InputError
        A path is missing, or a file is not valid YAML/JSON.
    """
    docs: list[PolicyDoc] = []
    skipped = 0
    for path in policy_files(paths):
        for d in read_documents(path):
            skipped += _collect(docs, path, d.index, d.node, d.obj, "", default_namespace, kinds)
    return docs, skipped


def _collect(
    docs: list[PolicyDoc],
    path: str,
    index: int,
    node: Any,
    obj: Any,
    prefix: str,
    default_namespace: str | None,
    kinds: list[KindDoc] | None = None,
) -> int:
    try:
        kind = classify_object(obj, path, index)
    except PolicyError as exc:
        raise located(exc, node, prefix) from exc
    if kind == "list":
        return sum(
            _collect(
                docs,
                path,
                index,
                item_node(node, "items", i),
                item,
                f"{prefix}items[{i}].",
                default_namespace,
                kinds,
            )
            for i, item in enumerate(obj["items"])
        )
    if kind == "other":
        if kinds is not None and (is_cilium_policy(obj) or is_cluster_policy(obj)):
            kinds.append(KindDoc(path, index, prefix, obj, node))
            return 0
        return 1
    findings = tuple(policy_findings(obj))
    policy = None
    if not any(f.severity == "error" for f in findings):
        policy = parse_policy(obj, path, index, default_namespace, findings)
        where = f"{path}#{index}{'/' + prefix.rstrip('.') if prefix else ''}"
        policy = NetworkPolicy(**{**policy.__dict__, "source": where})
    docs.append(PolicyDoc(path, index, prefix, obj, policy, findings, node))
    return 0


def locate_error(exc: PolicyError) -> PolicyError:
    """The same error with the line of its field, when the file can be read again."""
    if exc.path is None or exc.doc is None or exc.line is not None:
        return exc
    try:
        nodes = {d.index: d.node for d in read_documents(exc.path)}
    except InputError:
        return exc
    line = locate(nodes.get(exc.doc), exc.field)
    return PolicyError(exc.path, exc.field, exc.reason, doc=exc.doc, line=line)
