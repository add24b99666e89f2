"""Redundant policies and rules, decided with the semantics engine over the inventory universe.

A rule is redundant when removing it changes no verdict: for every workload its
policy selects, every (peer, port) the rule admits is admitted by another rule
of a policy that selects that workload for the same direction. A policy is
redundant when removing it changes no verdict: for each direction it applies to
and each workload it selects, either other policies still isolate the workload
and admit everything it admits, or nothing else isolates the workload and the
policy admits the whole universe anyway.

The universe (see :mod:`recommender.diff.universe`): the inventory workloads,
one address per region cut by the ipBlocks, node and apiserver addresses; one
port per region cut by the port entries and the declared ports. Within it the
answer is exact. Matching is the engine's own (:class:`CompiledRule`,
:meth:`PolicySet.selecting`).

Policies with an empty podSelector are never reported redundant: they cover
the pods created after the inventory was taken (default-deny is the point).
Removal is greedy in reverse key order, so of two identical rules or policies
the later one is reported and the earlier one is kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from recommender.diff.universe import external_universe, port_probes
from recommender.findings import LintFinding, finding
from recommender.model import Inventory
from recommender.semantics import PolicySet
from recommender.semantics.engine import CompiledPolicy
from recommender.semantics.reachability import WorkloadRep
from recommender.semantics.rules import CompiledRule
from recommender.vocabulary import DIRECTIONS

Admitted = frozenset[tuple[int, int]]  # (peer index, port index)


@dataclass
class _Universe:
    workloads: Sequence[WorkloadRep]
    peers: Sequence[WorkloadRep]
    ports: Sequence[tuple[int, str]]


class RedundancyCheck:
    """Find redundant policies (NPL040) and rules (NPL041) of one compiled set."""

    def __init__(
        self, ps: PolicySet, workloads: Sequence[WorkloadRep], inventory: Inventory
    ) -> None:
        policies = [cp.policy for cp in ps.policies]
        declared = {p for w in workloads for p in w.ports}
        self.ps = ps
        self.uni = _Universe(
            workloads,
            [*workloads, *external_universe(policies, inventory)],
            port_probes(policies, declared),
        )
        self._admitted: dict[tuple[str, str], Admitted] = {}
        self._selected: dict[tuple[int, str], list[WorkloadRep]] = {}

    def selected(self, cp: CompiledPolicy, direction: str) -> list[WorkloadRep]:
        """Workloads ``cp`` isolates in ``direction``."""
        key = (id(cp), direction)
        if key not in self._selected:
            self._selected[key] = [
                w for w in self.uni.workloads if cp in self.ps.selecting(w.endpoint, direction)
            ]
        return self._selected[key]

    def admitted(self, rule: CompiledRule, w: WorkloadRep, direction: str) -> Admitted:
        """(peer, port) pairs of the universe that ``rule`` admits for workload ``w``."""
        key = (rule.rule_id, w.key)
        hit = self._admitted.get(key)
        if hit is None:
            out: set[tuple[int, int]] = set()
            for i, peer in enumerate(self.uni.peers):
                if peer.key == w.key or not rule.matches_peer(peer.endpoint):
                    continue  # a pod cannot block access to itself
                dst = w.endpoint if direction == "ingress" else peer.endpoint
                out.update(
                    (i, j)
                    for j, (port, proto) in enumerate(self.uni.ports)
                    if rule.matches_port(port, proto, dst)
                )
            hit = self._admitted[key] = frozenset(out)
        return hit

    def run(self, locate: dict[str, tuple[str | None, int | None]]) -> list[LintFinding]:
        """Both checks; removal is greedy so mutual duplicates are reported once."""
        gone_policies: set[str] = set()
        out: list[LintFinding] = []
        for cp in sorted(self.ps.policies, key=lambda c: c.policy.key, reverse=True):
            # A namespace-wide policy (empty podSelector) also covers pods created
            # later; today's inventory cannot prove it redundant.
            if cp.policy.pod_selector.is_empty:
                continue
            if self._policy_redundant(cp, gone_policies):
                gone_policies.add(cp.policy.key)
                file, line = locate.get(cp.policy.key, (None, None))
                out.append(
                    finding(
                        "NPL040",
                        f"policy {cp.policy.key} is redundant: removing it "
                        "changes no verdict (other policies already decide the same)",
                        file=file,
                        line=line,
                        policy=cp.policy.key,
                    )
                )
        out += self._rules(gone_policies, locate)
        return out

    def _others(
        self,
        w: WorkloadRep,
        direction: str,
        gone_policies: set[str],
        gone_rules: set[str],
        skip: str,
    ) -> tuple[bool, set[tuple[int, int]]]:
        """(isolated by others, what their remaining rules admit) for ``w``."""
        isolating = [
            cp
            for cp in self.ps.selecting(w.endpoint, direction)
            if cp.policy.key not in gone_policies and cp.policy.key != skip
        ]
        admitted: set[tuple[int, int]] = set()
        for cp in isolating:
            for r in cp.rules(direction) or ():
                if r.rule_id not in gone_rules:
                    admitted |= self.admitted(r, w, direction)
        return bool(isolating), admitted

    def _policy_redundant(self, cp: CompiledPolicy, gone: set[str]) -> bool:
        total = (len(self.uni.peers) - 1) * len(self.uni.ports)
        any_selected = False
        for direction in DIRECTIONS:
            rules = cp.rules(direction)
            if rules is None:
                continue
            for w in self.selected(cp, direction):
                any_selected = True
                own: set[tuple[int, int]] = set()
                for r in rules:
                    own |= self.admitted(r, w, direction)
                isolated, others = self._others(w, direction, gone, set(), cp.policy.key)
                if isolated and not own <= others:
                    return False
                if not isolated and len(own) < total:
                    return False
        return any_selected  # a policy that selects nothing is NPL020, not redundancy

    def _rules(
        self, gone_policies: set[str], locate: dict[str, tuple[str | None, int | None]]
    ) -> Iterator[LintFinding]:
        gone_rules: set[str] = set()
        for cp in sorted(self.ps.policies, key=lambda c: c.policy.key, reverse=True):
            if cp.policy.key in gone_policies:
                continue
            for direction in DIRECTIONS:
                for rule in reversed(cp.rules(direction) or ()):
                    if self._rule_redundant(cp, rule, direction, gone_policies, gone_rules):
                        gone_rules.add(rule.rule_id)
                        yield _rule_finding(cp, rule, locate)

    def _rule_redundant(
        self,
        cp: CompiledPolicy,
        rule: CompiledRule,
        direction: str,
        gone_policies: set[str],
        gone_rules: set[str],
    ) -> bool:
        selected = self.selected(cp, direction)
        if not selected:
            return False
        for w in selected:
            own = self.admitted(rule, w, direction)
            if not own:
                return False  # admits nothing here: reported by the selector checks
            _, others = self._others(w, direction, gone_policies, gone_rules | {rule.rule_id}, "")
            if not own <= others:
                return False
        return True


def _rule_finding(
    cp: CompiledPolicy, rule: CompiledRule, locate: dict[str, tuple[str | None, int | None]]
) -> LintFinding:
    file, line = locate.get(rule.rule_id, locate.get(cp.policy.key, (None, None)))
    path = "spec." + rule.rule_id.split("#", 1)[1]
    return finding(
        "NPL041",
        f"rule {rule.rule_id} is redundant: every peer and port it admits "
        "is admitted by other rules for the same pods",
        file=file,
        line=line,
        policy=cp.policy.key,
        path=path,
    )
