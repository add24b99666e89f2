"""NetworkPolicy model -> ClusterNetworkPolicy (``policy.networking.k8s.io/v1alpha2``) in two tiers.

From the one recommendation:

* **Admin tier, Accept** (guardrails a namespace owner cannot override), learned
  from cluster-wide patterns: the same ``allow-dns`` egress in at least
  :data:`MIN_NAMESPACES` namespaces (``guardrail-dns``, priority 100); every
  workload's egress to the API server (``guardrail-apiserver-<ns>-<name>``, 200);
  one scraper (a pod peer of another namespace) reaching the workloads of at least
  :data:`MIN_SCRAPED` namespaces (``guardrail-scrape-...``, 300). The v1 rules they
  cover are removed, the namespaced policies keep their isolation.
* **Baseline tier, Deny** (``baseline-default-deny``, priority 1000, the lowest
  precedence so any Baseline policy an admin adds wins) replaces the per-namespace
  ``default-deny``. Ingress peers are "namespaces or pods" only, so Baseline cannot
  deny ingress from outside the cluster: a namespace with a pod no other policy
  isolates for ingress keeps an Ingress-only v1 ``default-deny`` (reason in SUMMARY).
* Everything else stays namespaced NetworkPolicy, written by the v1 writer.

Pass: a Pass rule only matters above an Admin Deny; the recommendation learns no
Admin Deny, so none is written (the evaluator handles Pass in what users write).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recommender.model import Inventory, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.policy_io.kinds.cilium import _address_kind
from recommender.policy_io.kinds.cnp_objects import (
    Unexpressible,
    cnp_dict,
    fit_limits,
    namespaces_in,
    rule_dict,
    selector_dict,
)
from recommender.semantics import compile_policies, endpoint_for_pod
from recommender.semantics.endpoints import TERMINAL_PHASES

MIN_NAMESPACES = 2
MIN_SCRAPED = 3
PRIORITY = {"dns": 100, "apiserver": 200, "scrape": 300, "baseline": 1000}
MANAGED_BY = {"app.kubernetes.io/managed-by": "netpol-recommender"}
LEARNED_FROM = "evidence.netpol-recommender.io/learned-from"
CONNECTIONS = "evidence.netpol-recommender.io/connections"


@dataclass
class Plan:
    """The cluster-scoped objects, the namespaced policies left, and why."""

    cluster: list[dict[str, Any]] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_cluster_policies(policies: Sequence[NetworkPolicy], inventory: Inventory) -> Plan:
    """Split the recommendation into Admin guardrails, Baseline default-deny and the rest."""
    plan = Plan(policies=list(policies))
    _dns_guardrail(plan)
    _apiserver_guardrails(plan, inventory)
    _scrape_guardrails(plan)
    _baseline(plan, inventory)
    plan.cluster = [o for obj in plan.cluster for o in fit_limits(obj)]
    plan.policies.sort(key=lambda p: (p.namespace, p.name))
    plan.cluster.sort(
        key=lambda o: (o["spec"]["tier"], o["spec"]["priority"], o["metadata"]["name"])
    )
    return plan


def _meta(sources: Sequence[NetworkPolicy], whole: bool = True) -> dict[str, Any]:
    """Labels and evidence: the policies learned from, their connections when wholly replaced."""
    notes = {LEARNED_FROM: ",".join(sorted(p.key for p in sources))}
    if whole:  # a partly taken policy's count covers rules that stay namespaced
        notes[CONNECTIONS] = str(
            sum(int(dict(p.annotations).get(CONNECTIONS, "0")) for p in sources)
        )
    return {"labels": dict(MANAGED_BY), "annotations": dict(sorted(notes.items()))}


def _is_default_deny(p: NetworkPolicy) -> bool:
    return (
        p.name == "default-deny"
        and p.pod_selector == LabelSelector()
        and not (p.ingress or p.egress)
    )


def _deny_egress_namespaces(plan: Plan) -> set[str]:
    return {
        p.namespace for p in plan.policies if _is_default_deny(p) and "Egress" in p.policy_types
    }


def _is_namespace_dns(p: NetworkPolicy, guarded: set[str]) -> bool:
    return (
        p.name == "allow-dns"
        and p.namespace in guarded  # a default-deny keeps egress isolated once it is gone
        and p.pod_selector == LabelSelector()
        and p.policy_types == ("Egress",)
        and bool(p.egress)
    )


def _dns_guardrail(plan: Plan) -> None:
    """One Admin Accept for the allow-dns egress many namespaces share."""
    guarded = _deny_egress_namespaces(plan)
    groups: dict[tuple[Rule, ...], list[NetworkPolicy]] = {}
    for p in plan.policies:
        if _is_namespace_dns(p, guarded):
            groups.setdefault(p.egress or (), []).append(p)
    if not groups:
        return
    rules, members = max(groups.items(), key=lambda kv: (len(kv[1]), sorted(p.key for p in kv[1])))
    if len(members) < MIN_NAMESPACES:
        plan.notes.append(f"DNS egress: in {len(members)} namespace(s), kept namespaced")
        return
    try:
        egress = [rule_dict(r, "egress", "Accept", f"dns-{i}") for i, r in enumerate(rules)]
    except Unexpressible as exc:
        plan.notes.append(f"DNS egress kept namespaced: {exc}")
        return
    nss = sorted(p.namespace for p in members)
    subject = {"namespaces": namespaces_in(nss)}
    meta = _meta(members)
    plan.cluster.append(
        cnp_dict("guardrail-dns", "Admin", PRIORITY["dns"], subject, {"egress": egress}, meta)
    )
    plan.policies = [p for p in plan.policies if p not in members]
    plan.notes.append(f"guardrail-dns (Admin, Accept) replaces allow-dns in {', '.join(nss)}")


def _subject_pods(p: NetworkPolicy) -> dict[str, Any]:
    ns = {"matchLabels": {"kubernetes.io/metadata.name": p.namespace}}
    return {"pods": {"namespaceSelector": ns, "podSelector": selector_dict(p.pod_selector)}}


def _apiserver_guardrails(plan: Plan, inventory: Inventory) -> None:
    """An Admin Accept per workload for its learned egress to the API server."""
    out = []
    for p in plan.policies:
        rules, rest = _take_peers(
            p.egress or (), lambda q: q.ip_block is not None and _is_apiserver(q, inventory)
        )
        if not rules:
            out.append(p)
            continue
        name = f"guardrail-apiserver-{p.namespace}-{p.name}"
        if len(name) > 253:
            plan.notes.append(f"{p.key}: API-server egress kept namespaced (name too long)")
            out.append(p)
            continue
        egress = [rule_dict(r, "egress", "Accept", f"apiserver-{i}") for i, r in enumerate(rules)]
        plan.cluster.append(
            cnp_dict(
                name,
                "Admin",
                PRIORITY["apiserver"],
                _subject_pods(p),
                {"egress": egress},
                _meta([p]),
            )
        )
        plan.notes.append(f"{name} (Admin, Accept) takes {p.key}'s API-server egress")
        out.append(replace(p, egress=rest))
    plan.policies = out


def _is_apiserver(peer: Peer, inventory: Inventory) -> bool:
    block = peer.ip_block
    return (
        block is not None
        and not block.except_
        and _address_kind(block.cidr, inventory) == "cluster_infra"
    )


def _take_peers(rules: tuple[Rule, ...], wanted: Any) -> tuple[list[Rule], tuple[Rule, ...]]:
    """(rules of only the wanted peers, the rules left without them; empty ones dropped)."""
    taken: list[Rule] = []
    left: list[Rule] = []
    for r in rules:
        mine = tuple(q for q in r.peers or () if wanted(q))
        if mine:
            taken.append(Rule(mine, r.ports))
        others = tuple(q for q in r.peers or () if not wanted(q))
        if others or not r.peers:
            left.append(Rule(others or r.peers, r.ports))
    return taken, tuple(left)


def _scraper_key(peer: Peer, own: str) -> tuple[Any, ...] | None:
    ns = peer.namespace_selector
    if peer.ip_block is not None or ns is None or peer.pod_selector is None:
        return None
    labels = dict(ns.match_labels or ())
    if ns.match_expressions or set(labels) != {"kubernetes.io/metadata.name"}:
        return None
    return None if labels["kubernetes.io/metadata.name"] == own else (ns, peer.pod_selector)


def _scrape_guardrails(plan: Plan) -> None:
    """An Admin Accept for a scraper whose ingress rules span many namespaces."""
    seen: dict[tuple[Any, ...], dict[str, list[NetworkPolicy]]] = {}
    for p in plan.policies:
        for r in p.ingress or ():
            for q in r.peers or ():
                key = _scraper_key(q, p.namespace)
                if key is not None:
                    seen.setdefault(key, {}).setdefault(p.namespace, []).append(p)
    for key, by_ns in sorted(seen.items(), key=lambda kv: repr(kv[0])):
        if len(by_ns) >= MIN_SCRAPED:
            _scrape_guardrail(plan, key, sorted(by_ns))


def _scrape_guardrail(plan: Plan, key: tuple[Any, ...], nss: list[str]) -> None:
    ns_sel, pod_sel = key
    peer = Peer(pod_selector=pod_sel, namespace_selector=ns_sel)
    ports: set[Any] = set()
    touched: list[NetworkPolicy] = []
    out = []
    for p in plan.policies:
        taken, rest = _take_peers(p.ingress or (), lambda q: q == peer)
        if taken and p.namespace in nss and all(r.ports for r in taken):
            ports.update(pt for r in taken for pt in r.ports or ())
            touched.append(p)
            p = replace(p, ingress=rest)
        out.append(p)
    if not touched or not ports:
        return  # a rule without ports would admit every port: leave it namespaced
    who = f"{dict(ns_sel.match_labels or ())['kubernetes.io/metadata.name']}-{_label_text(pod_sel)}"
    rule = rule_dict(
        Rule((peer,), tuple(sorted(ports, key=_port_order))), "ingress", "Accept", "scrape"
    )
    # Label values may hold capitals and "_", which a DNS-subdomain name may not.
    name = re.sub(r"[^a-z0-9.-]+", "-", f"guardrail-scrape-{who}".lower())[:253].rstrip("-.")
    plan.cluster.append(
        cnp_dict(
            name,
            "Admin",
            PRIORITY["scrape"],
            {"namespaces": namespaces_in(nss)},
            {"ingress": [rule]},
            _meta(touched, whole=False),
        )
    )
    plan.policies = out
    plan.notes.append(
        f"{name} (Admin, Accept): one scraper reaches {len(nss)} namespaces; admits it to "
        f"every pod there on the {len(ports)} scrape port(s) (learned: {len(touched)} "
        "workloads; the scraper's own egress policy still limits where it goes)"
    )


def _port_order(p: PolicyPort) -> tuple[str, bool, str]:
    return (p.protocol, isinstance(p.port, str), str(p.port).zfill(5))


def _label_text(sel: LabelSelector) -> str:
    return "-".join(v for _, v in sel.match_labels or ()) or "pods"


BASELINE_RULES: dict[str, dict[str, Any]] = {
    # Every pod (namespaces {} selects all namespaces); outside sources cannot be named.
    "Ingress": {"name": "deny-pods", "action": "Deny", "from": [{"namespaces": {}}]},
    # networks "0.0.0.0/0" and "::/0": "that will ... deny all IPv4 pod-to-pod traffic as
    # well", so this is every destination.
    "Egress": {"name": "deny-all", "action": "Deny", "to": [{"networks": ["0.0.0.0/0", "::/0"]}]},
}


def _baseline(plan: Plan, inventory: Inventory) -> None:
    """Baseline Deny for the namespaces' default-deny; Ingress-only v1 fallback where needed."""
    denies = [p for p in plan.policies if _is_default_deny(p)]
    if not denies:
        return
    exposed = _ingress_gaps(plan, denies, inventory)
    kept = [
        replace(p, policy_types=("Ingress",))
        for p in denies
        if p.namespace in exposed and "Ingress" in p.policy_types
    ]
    plan.notes += [
        f"{p.namespace}/default-deny kept (Ingress only): {exposed[p.namespace]} has no other "
        "ingress policy, and Baseline cannot deny ingress from outside the cluster "
        "(ClusterNetworkPolicy ingress peers are namespaces or pods only)"
        for p in kept
    ]
    plan.policies = [p for p in plan.policies if p not in denies] + kept
    groups = sorted({p.policy_types for p in denies})
    for types in groups:
        members = [p for p in denies if p.policy_types == types]
        suffix = "" if len(groups) == 1 else "-" + "-".join(t.lower() for t in types)
        _baseline_object(plan, f"baseline-default-deny{suffix}", types, members)


def _baseline_object(
    plan: Plan, name: str, types: tuple[str, ...], members: list[NetworkPolicy]
) -> None:
    nss = sorted(p.namespace for p in members)
    rules = {t.lower(): [dict(BASELINE_RULES[t])] for t in types}
    subject = {"namespaces": namespaces_in(nss)}
    obj = cnp_dict(name, "Baseline", PRIORITY["baseline"], subject, rules, _meta(members))
    plan.cluster.append(obj)
    plan.notes.append(f"{name} (Baseline, Deny) stands for default-deny in {', '.join(nss)}")


def _ingress_gaps(plan: Plan, denies: list[NetworkPolicy], inventory: Inventory) -> dict[str, str]:
    """Namespace -> a running pod that only its default-deny isolates for ingress."""
    others = compile_policies([p for p in plan.policies if p not in denies], inventory)
    nss = {p.namespace for p in denies}
    out: dict[str, str] = {}
    for pod in sorted(inventory.pods, key=lambda p: p.key):
        if pod.namespace not in nss or pod.host_network or pod.phase in TERMINAL_PHASES:
            continue
        if not others.selecting(endpoint_for_pod(pod, inventory), "ingress"):
            out.setdefault(pod.namespace, pod.key)
    return out


def summary_section(plan: Plan) -> str:
    """The SUMMARY.md section saying what went cluster-wide and what stayed, and why."""
    lines = ["", "## ClusterNetworkPolicy (`--kind clusternetworkpolicy`)", ""]
    lines += [f"- {n}" for n in plan.notes] or ["- nothing was cluster-wide; all stays namespaced"]
    return "\n".join(lines) + "\n"


CLUSTER_DIR = "_cluster"  # "_" cannot start a namespace name, so no clash
