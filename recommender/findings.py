"""Lint findings and the catalogue of stable rule ids (documented in docs/lint.md).

``NPL0xx`` ids are lint's own; validation findings keep their ``NP1xx`` ids from
:mod:`recommender.semantics.validate` (one id per API-server rule). Ids never change meaning;
retired ids are not reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "note"]
SEVERITY_ORDER: dict[str, int] = {"error": 0, "warning": 1, "note": 2}


@dataclass(frozen=True)
class LintRule:
    """A rule of the catalogue: id, short name, default severity, one-line description."""

    id: str
    name: str
    severity: Severity
    description: str


@dataclass(frozen=True)
class LintFinding:
    """One finding: where (file, line, policy, field path) and what."""

    rule_id: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    policy: str | None = None  # namespace/name
    path: str | None = None  # field path inside the policy, e.g. spec.egress[0].to[1]

    @property
    def sort_key(self) -> tuple[object, ...]:
        """Files, then lines, then ids: the order of every output."""
        return (
            self.file or "~",
            self.line or 0,
            self.policy or "",
            self.rule_id,
            self.path or "",
            self.message,
        )


_RULES = (
    LintRule(
        "NPL001",
        "allow-all-rule",
        "warning",
        "a rule without peers and without ports admits every peer on every port",
    ),
    LintRule(
        "NPL002",
        "any-peer-rule",
        "note",
        "a rule without peers admits every pod and every external address (on its ports)",
    ),
    LintRule(
        "NPL003",
        "world-cidr",
        "warning",
        "an ipBlock of 0.0.0.0/0 or ::/0 admits the whole address family",
    ),
    LintRule(
        "NPL004",
        "all-namespaces-peer",
        "note",
        "an empty namespaceSelector without a podSelector admits every pod of the cluster",
    ),
    LintRule(
        "NPL005",
        "duplicate-policy-name",
        "warning",
        "another policy with the same namespace/name is in the set; only one can exist",
    ),
    LintRule(
        "NPL010",
        "no-default-deny",
        "warning",
        "no policy selects every pod of a namespace for this direction (no default-deny)",
    ),
    LintRule(
        "NPL011",
        "uncovered-workload",
        "warning",
        "no policy isolates this workload's pods for this direction: all traffic passes",
    ),
    LintRule(
        "NPL012",
        "egress-without-dns",
        "warning",
        "pods isolated for egress cannot reach cluster DNS on 53/UDP",
    ),
    LintRule(
        "NPL020",
        "policy-selects-nothing",
        "warning",
        "the policy's podSelector matches no pod of its namespace in the inventory",
    ),
    LintRule(
        "NPL021",
        "peer-selects-nothing",
        "warning",
        "a selector peer matches no pod in the inventory",
    ),
    LintRule(
        "NPL022",
        "namespace-selector-matches-nothing",
        "warning",
        "a namespaceSelector matches no namespace in the inventory",
    ),
    LintRule(
        "NPL023",
        "namespace-name-label",
        "error",
        "a namespaceSelector keys on a label the namespaces lack while its value names a "
        "namespace; use kubernetes.io/metadata.name",
    ),
    LintRule(
        "NPL024", "unknown-namespace", "note", "the policy's namespace is not in the inventory"
    ),
    LintRule(
        "NPL030",
        "ephemeral-label",
        "warning",
        "a selector uses a label that changes per rollout, pod or job run",
    ),
    LintRule(
        "NPL031",
        "cilium-excluded-label",
        "note",
        "a pod selector uses a label Cilium leaves out of security identities",
    ),
    LintRule(
        "NPL050",
        "fqdn-without-dns-proxy",
        "error",
        "a CiliumNetworkPolicy toFQDNs rule for pods no DNS rule (toPorts[].rules.dns) "
        "proxies: the names never resolve, the rule matches nothing",
    ),
    LintRule(
        "NPL051",
        "world-entity",
        "warning",
        "a world (or all) entity admits every address outside the cluster where a CIDR or "
        "FQDN rule would do (a note for ingress without narrow evidence)",
    ),
    LintRule(
        "NPL052",
        "cnp-rule-limit",
        "error",
        "a ClusterNetworkPolicy with more than 25 ingress or 25 egress rules (API limit)",
    ),
    LintRule(
        "NPL053",
        "cnp-ingress-cidr-peer",
        "error",
        "a ClusterNetworkPolicy ingress peer other than namespaces or pods (no CIDR "
        "ingress peers in v1alpha2)",
    ),
    LintRule(
        "NPL054",
        "cnp-pass-unhandled",
        "warning",
        "a Pass rule for pods no namespace NetworkPolicy selects in that direction (or in "
        "the Baseline tier): the traffic falls through to the default allow",
    ),
    LintRule(
        "NPL059",
        "kind-not-checked",
        "note",
        "a CiliumNetworkPolicy or ClusterNetworkPolicy the evaluator refuses; not checked",
    ),
    LintRule(
        "NPL040",
        "redundant-policy",
        "warning",
        "removing the policy changes no verdict over the inventory universe",
    ),
    LintRule(
        "NPL041",
        "redundant-rule",
        "warning",
        "removing the rule changes no verdict over the inventory universe",
    ),
)

#: Validation ids with their own entry (the other ``NP1xx`` ids get :func:`rule_for`'s).
_VALIDATION_RULES = (
    LintRule(
        "NP118",
        "unknown-field",
        "error",
        "a field the networking.k8s.io/v1 API does not define (a typo such as `ingres`); "
        "strict field validation rejects it, a lenient apply drops it silently",
    ),
)

#: The catalogue, by id. Other validation ids (``NP1xx``) are added on the fly.
RULES: dict[str, LintRule] = {r.id: r for r in (*_RULES, *_VALIDATION_RULES)}


def rule_for(rule_id: str) -> LintRule:
    """The catalogue entry; validation ids get a generic entry."""
    hit = RULES.get(rule_id)
    if hit is not None:
        return hit
    return LintRule(
        rule_id,
        "invalid-field",
        "error",
        "the API server would reject this field (see recommender.validate)",
    )


def finding(rule_id: str, message: str, **where: object) -> LintFinding:
    """A finding with the rule's default severity."""
    return LintFinding(rule_id, RULES[rule_id].severity, message, **where)  # type: ignore[arg-type]
