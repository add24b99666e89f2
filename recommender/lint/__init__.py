"""``netpol lint``: findings about a policy set, each with a severity, a stable id, file and policy.

Read files with :func:`read_policy_docs` (invalid policies are kept and reported),
then :func:`lint_docs` runs every check against an inventory. The ids are in
:data:`RULES` and in docs/lint.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import PolicyError
from recommender.findings import RULES, SEVERITY_ORDER, LintFinding, LintRule, rule_for
from recommender.lint.checks import InventoryView, check_policy
from recommender.lint.coverage import (
    default_deny_gaps,
    dns_gaps,
    kind_default_denies,
    uncovered_workloads,
)
from recommender.lint.kinds import (
    KindDoc,
    ParsedKinds,
    cilium_findings,
    kind_counts,
    parse_kind_docs,
    pass_findings,
)
from recommender.lint.redundancy import RedundancyCheck
from recommender.lint.source import PolicyDoc, locate_error, read_policy_docs
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics import compile_policies
from recommender.semantics.cilium import compile_policy_kinds
from recommender.semantics.cnp import compile_all_kinds
from recommender.semantics.cnp_rules import KIND
from recommender.semantics.reachability import workload_universe


@dataclass
class LintReport:
    """Sorted findings plus what was linted."""

    findings: list[LintFinding]
    files: list[str]
    policies: int
    invalid: int
    skipped: int = 0
    #: CiliumNetworkPolicy / ClusterNetworkPolicy objects read (kind checks only).
    kinds: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity listed."""
        out = dict.fromkeys(SEVERITY_ORDER, 0)
        for f in self.findings:
            out[f.severity] += 1
        return out

    def fails(self, threshold: str = "error") -> bool:
        """True when a finding is at least as severe as ``threshold``."""
        limit = SEVERITY_ORDER[threshold]
        return any(SEVERITY_ORDER[f.severity] <= limit for f in self.findings)


def lint_docs(
    docs: Sequence[PolicyDoc],
    inventory: Inventory,
    namespaces: Iterable[str] | None = None,
    redundancy: bool = True,
    kind_docs: Sequence[KindDoc] = (),
) -> LintReport:
    """Every finding for ``docs`` (and the Cilium/ClusterNetworkPolicy ``kind_docs``).

    ``namespaces`` limits the inventory-wide checks (default-deny, open
    workloads, DNS) to those namespaces; by default every namespace with a
    workload is checked. Isolation and DNS are judged with every kind
    (:func:`compile_all_kinds`, as shadow does); redundancy over the
    NetworkPolicies alone.
    """
    findings = [*_validation(docs)]
    valid = [d for d in docs if d.policy is not None]
    policies = [d.policy for d in valid if d.policy is not None]
    view = InventoryView.of(inventory)
    findings += _duplicates(valid)
    for d in valid:
        assert d.policy is not None
        findings += check_policy(d.policy, view, d.file, _locator(d))
    parsed, kind_hits = parse_kind_docs(kind_docs)
    findings += kind_hits
    ps = compile_policies(policies, inventory)
    every, more = _every_kind(policies, parsed, inventory)
    findings += more
    scope = None if namespaces is None else set(namespaces)
    universe = workload_universe(inventory)
    workloads = [w for w in universe if scope is None or w.namespace in scope]
    spaces = sorted({w.namespace for w in workloads})
    locate = _locations(valid)
    locate.update(_kind_locations(parsed))
    findings += default_deny_gaps(policies, spaces, kind_default_denies(parsed, view))
    findings += uncovered_workloads(every, workloads)
    findings += dns_gaps(every, workloads, inventory, locate)
    findings += cilium_findings(parsed, universe)
    inner = compile_policy_kinds(policies, [p for _, p in parsed.cilium], inventory)
    findings += pass_findings(parsed, inner, universe)
    if redundancy:
        findings += RedundancyCheck(ps, universe, inventory).run(locate)
    findings.sort(key=lambda f: f.sort_key)
    files = sorted({d.file for d in docs} | {d.file for d in kind_docs})
    report = LintReport(findings, files, len(policies), len(docs) - len(valid))
    report.kinds = kind_counts(kind_docs)
    return report


def _every_kind(
    policies: Sequence[NetworkPolicy], parsed: ParsedKinds, inventory: Inventory
) -> tuple[Any, list[LintFinding]]:
    """The engine over every kind; ClusterNetworkPolicies it cannot judge are left out, noted."""
    cilium = [p for _, p in parsed.cilium]
    cluster = [p for _, p in parsed.cluster]
    try:
        return compile_all_kinds(policies, cilium, cluster, inventory), []
    except PolicyError as exc:
        notes = [
            d.at("NPL059", f"{KIND} left out of the coverage checks: {exc.reason}")
            for d, p in parsed.cluster
            if p.uses_nodes
        ]
        keep = [p for p in cluster if not p.uses_nodes]
        return compile_all_kinds(policies, cilium, keep, inventory), notes


def _kind_locations(parsed: ParsedKinds) -> dict[str, tuple[str | None, int | None]]:
    out: dict[str, tuple[str | None, int | None]] = {}
    for d, key in [(d, p.key) for d, p in parsed.cilium] + [(d, p.key) for d, p in parsed.cluster]:
        out.setdefault(key, (d.file, d.line("metadata.name")))
    return out


def _locator(d: PolicyDoc) -> Callable[[str], int | None]:
    """Field path (relative to the policy) -> line."""
    return lambda path: d.line(d.prefix + path)


def _validation(docs: Sequence[PolicyDoc]) -> Iterable[LintFinding]:
    for d in docs:
        for f in d.findings:
            path = d.prefix + f.path if f.path != "<document>" else d.prefix.rstrip(".")
            yield LintFinding(
                f.id,
                "error" if f.severity == "error" else "warning",
                f.message,
                file=d.file,
                line=d.line(path),
                policy=d.name,
                path=f.path,
            )


def _duplicates(docs: Sequence[PolicyDoc]) -> Iterable[LintFinding]:
    first: dict[str, PolicyDoc] = {}
    for d in docs:
        assert d.policy is not None
        seen = first.setdefault(d.policy.key, d)
        if seen is not d:
            yield LintFinding(
                "NPL005",
                "warning",
                f"policy {d.policy.key} is also defined in "
                f"{seen.file}:{seen.line(seen.prefix + 'metadata.name')}; applying "
                "both keeps only the last",
                file=d.file,
                line=d.line(d.prefix + "metadata.name"),
                policy=d.policy.key,
            )


def _locations(docs: Sequence[PolicyDoc]) -> dict[str, tuple[str | None, int | None]]:
    """Policy keys and rule ids -> (file, line)."""
    out: dict[str, tuple[str | None, int | None]] = {}
    for d in docs:
        assert d.policy is not None
        out.setdefault(d.policy.key, (d.file, d.line(d.prefix + "metadata.name")))
        for direction, rules in (("ingress", d.policy.ingress), ("egress", d.policy.egress)):
            for i, _ in enumerate(rules or ()):
                rid = f"{d.policy.key}#{direction}[{i}]"
                out.setdefault(rid, (d.file, d.line(f"{d.prefix}spec.{direction}[{i}]")))
    return out


__all__ = [
    "RULES",
    "KindDoc",
    "LintFinding",
    "LintReport",
    "LintRule",
    "PolicyDoc",
    "lint_docs",
    "locate_error",
    "read_policy_docs",
    "rule_for",
]
