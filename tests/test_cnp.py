"""ClusterNetworkPolicy v1alpha2: tiered evaluation, refusals, and the writer's plan.

The conformance cases are written from the descriptions of the upstream tests in
kubernetes-sigs/network-policy-api ``conformance/tests`` (named per case); the
four namespaces and pods are the conformance suite's Hogwarts houses.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.cli.parser import main
from recommender.errors import PolicyError
from recommender.model import (
    ContainerPort,
    Inventory,
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Node,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.policy_io.kinds.cnp import plan_cluster_policies
from recommender.policy_io.kinds.cnp_objects import Unexpressible, fit_limits
from recommender.policy_io.kinds.tree import render_cnp_tree, schema_errors
from recommender.policy_io.policy_yaml import load_policies
from recommender.semantics import Endpoint, pod_endpoint
from recommender.semantics.cnp import compile_all_kinds

PREFIX = "network-policy-conformance-"
G, S, H, R = (PREFIX + h for h in ("gryffindor", "slytherin", "hufflepuff", "ravenclaw"))
HARRY = pod_endpoint(G, {"app": "harry-potter"}, ip="10.0.1.1", node="node-1")
DRACO = pod_endpoint(S, {"app": "draco-malfoy"}, ip="10.0.2.1", node="node-1")
CEDRIC = pod_endpoint(H, {"app": "cedric-diggory"}, ip="10.0.3.1", node="node-2")
LUNA = pod_endpoint(R, {"app": "luna-lovegood"}, ip="10.0.4.1", node="node-2")
NODES = (
    Node("node-1", ("172.18.0.2",), labels={"node-role.kubernetes.io/control-plane": ""}),
    Node("node-2", ("172.18.0.3",), labels={"kubernetes.io/os": "linux"}),
)
INV = Inventory(nodes=NODES)


def _ns(name: str) -> str:
    return f"{{matchLabels: {{kubernetes.io/metadata.name: {name}}}}}"


def cnp(name: str, tier: str, prio: int, subject: str, ingress: str = "", egress: str = "") -> str:
    """One ClusterNetworkPolicy document (rule lists in YAML flow style)."""
    body = f"""apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: {name}}}
spec:
  tier: {tier}
  priority: {prio}
  subject: {{namespaces: {_ns(subject)}}}
"""
    if ingress:
        body += f"  ingress: {ingress}\n"
    if egress:
        body += f"  egress: {egress}\n"
    return body


def rule(action: str, ns: str, direction: str = "ingress", port: int | None = None) -> str:
    key = "from" if direction == "ingress" else "to"
    protos = f", protocols: [{{tcp: {{destinationPort: {{number: {port}}}}}}}]" if port else ""
    return f"{{action: {action}, {key}: [{{namespaces: {_ns(ns)}}}]{protos}}}"


NP_ALLOW_SLYTHERIN = f"""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow-gress-from-to-slytherin-to-gryffindor, namespace: {G}}}
spec:
  podSelector: {{}}
  policyTypes: [Ingress, Egress]
  ingress: [{{from: [{{namespaceSelector: {_ns(S)}}}]}}]
  egress: [{{to: [{{namespaceSelector: {_ns(S)}}}]}}]
"""


def engine(tmp_path: Path, *docs: str, inventory: Inventory = INV):
    path = tmp_path / "p.yaml"
    path.write_text("---\n".join(docs))
    loaded = load_policies([str(path)])
    return compile_all_kinds(loaded.policies, loaded.cilium, loaded.cluster, inventory)


def verdict(ps, src: Endpoint, dst: Endpoint, port: int = 80) -> str:
    return ps.decide(src, dst, port, "TCP").verdict


# -- CNPAdminTierIntegration (base/api_integration/standard-anp-np-banp.yaml) ---------


def _integration(ingress_action: str, egress_action: str, with_np: bool = True) -> list[str]:
    docs = [
        cnp(
            "pass-example",
            "Admin",
            16,
            G,
            f"[{rule(ingress_action, S)}]",
            f"[{rule(egress_action, S, 'egress')}]",
        ),
        cnp("default", "Baseline", 10, G, f"[{rule('Deny', S)}]", f"[{rule('Deny', S, 'egress')}]"),
    ]
    return [*docs, NP_ALLOW_SLYTHERIN] if with_np else docs


def test_admin_deny_beats_a_networkpolicy_allow(tmp_path):
    ps = engine(tmp_path, *_integration("Deny", "Deny"))
    d = ps.decide(DRACO, HARRY, 80, "TCP")
    assert (d.verdict, d.denied_by) == ("denied", "ingress")
    assert d.ingress_rules == ("ClusterNetworkPolicy/pass-example#ingress[0]",)
    assert "Admin tier Deny" in (d.reason or "")
    assert verdict(ps, HARRY, DRACO, 8080) == "denied"


def test_admin_pass_hands_over_to_networkpolicy(tmp_path):
    ps = engine(tmp_path, *_integration("Pass", "Pass"))
    d = ps.decide(DRACO, HARRY, 80, "TCP")
    assert d.is_allowed
    assert d.ingress_rules == (f"{G}/allow-gress-from-to-slytherin-to-gryffindor#ingress[0]",)
    assert verdict(ps, HARRY, DRACO) == "allowed"


def test_admin_pass_without_networkpolicy_reaches_baseline(tmp_path):
    ps = engine(tmp_path, *_integration("Pass", "Pass", with_np=False))
    d = ps.decide(DRACO, HARRY, 80, "TCP")
    assert d.verdict == "denied"
    assert d.ingress_rules == ("ClusterNetworkPolicy/default#ingress[0]",)
    assert "Baseline tier Deny" in (d.reason or "")
    assert verdict(ps, HARRY, DRACO) == "denied"


def test_networkpolicy_decides_before_baseline_for_selected_pods(tmp_path):
    # "v1.NetworkPolicy always makes a final decision for selected pods": the NP's
    # implicit deny of hufflepuff is not rescued by a Baseline Accept.
    accept_h = cnp("base", "Baseline", 1, G, f"[{rule('Accept', H)}]")
    ps = engine(tmp_path, accept_h, NP_ALLOW_SLYTHERIN)
    d = ps.decide(CEDRIC, HARRY, 80, "TCP")
    assert (d.verdict, d.denied_by) == ("denied", "ingress")


def test_baseline_pass_falls_to_the_default_allow(tmp_path):
    ps = engine(tmp_path, cnp("base", "Baseline", 1, G, f"[{rule('Pass', S)}, {rule('Deny', S)}]"))
    assert verdict(ps, DRACO, HARRY) == "allowed"


# -- CNPAdminTierIngressRulesEgressUnaffected / ...EgressRulesIngressUnaffected -------


def test_ingress_only_policy_leaves_egress_alone(tmp_path):
    ps = engine(tmp_path, cnp("iso", "Admin", 5, G, ingress=f"[{rule('Deny', S)}]"))
    assert verdict(ps, DRACO, HARRY) == "denied"
    assert verdict(ps, HARRY, LUNA) == "allowed"
    assert verdict(ps, HARRY, CEDRIC) == "allowed"


def test_egress_only_policy_leaves_ingress_alone(tmp_path):
    ps = engine(tmp_path, cnp("iso", "Admin", 5, G, egress=f"[{rule('Deny', S, 'egress')}]"))
    assert verdict(ps, HARRY, DRACO) == "denied"
    assert verdict(ps, LUNA, HARRY) == "allowed"


# -- CNPAdminTierSamePriority (base/admin_tier/standard-same-priority.yaml) ----------


def test_same_priority_policies_all_apply_without_bleeding(tmp_path):
    docs = [
        cnp(
            "gs",
            "Admin",
            5,
            G,
            f"[{rule('Deny', S, port=80)}]",
            f"[{rule('Deny', S, 'egress', 80)}]",
        ),
        cnp(
            "gh",
            "Admin",
            5,
            G,
            f"[{rule('Deny', H, port=80)}]",
            f"[{rule('Deny', H, 'egress', 80)}]",
        ),
        cnp(
            "hs",
            "Admin",
            5,
            H,
            f"[{rule('Deny', S, port=8080)}]",
            f"[{rule('Deny', S, 'egress', 8080)}]",
        ),
    ]
    ps = engine(tmp_path, *docs)
    denied = [(DRACO, HARRY, 80), (HARRY, DRACO, 80), (CEDRIC, HARRY, 80), (HARRY, CEDRIC, 80)]
    denied += [(DRACO, CEDRIC, 8080), (CEDRIC, DRACO, 8080)]
    allowed = [(DRACO, HARRY, 8080), (HARRY, DRACO, 8080), (DRACO, CEDRIC, 80), (CEDRIC, DRACO, 80)]
    allowed += [(LUNA, HARRY, 80), (HARRY, LUNA, 80)]
    assert [verdict(ps, *t) for t in denied] == ["denied"] * len(denied)
    assert [verdict(ps, *t) for t in allowed] == ["allowed"] * len(allowed)


def test_same_priority_disagreement_is_unknown_not_a_guess(tmp_path):
    # "the implementation can apply any of the matching policies ... there is no way
    # for the user to reliably determine which one it will choose."
    docs = [
        cnp("a", "Admin", 5, G, f"[{rule('Accept', S)}]"),
        cnp("b", "Admin", 5, G, f"[{rule('Deny', S)}]"),
    ]
    d = engine(tmp_path, *docs).decide(DRACO, HARRY, 80, "TCP")
    assert d.verdict == "unknown"
    assert "same priority 5 disagree" in (d.reason or "")
    assert "ClusterNetworkPolicy/a#ingress[0] Accept" in (d.reason or "")


def test_same_priority_agreement_decides(tmp_path):
    docs = [
        cnp("a", "Admin", 5, G, f"[{rule('Deny', S)}]"),
        cnp("b", "Admin", 5, G, f"[{rule('Deny', S)}]"),
    ]
    d = engine(tmp_path, *docs).decide(DRACO, HARRY, 80, "TCP")
    assert d.verdict == "denied"
    assert len(d.ingress_rules) == 2


# -- CNPAdminTierPriority: lower value first; rule order inside one policy ---------------


@pytest.mark.parametrize(
    ("accept_prio", "deny_prio", "expected"),
    [(10, 20, "allowed"), (20, 10, "denied"), (0, 1000, "allowed")],
    ids=["accept-first", "deny-first", "range-ends"],
)
def test_lower_priority_value_wins(tmp_path, accept_prio, deny_prio, expected):
    docs = [
        cnp("accept", "Admin", accept_prio, G, f"[{rule('Accept', S)}]"),
        cnp("deny", "Admin", deny_prio, G, f"[{rule('Deny', S)}]"),
    ]
    assert verdict(engine(tmp_path, *docs), DRACO, HARRY) == expected


def test_first_written_rule_wins_inside_a_policy(tmp_path):
    ps = engine(
        tmp_path, cnp("p", "Admin", 5, G, f"[{rule('Accept', S, port=80)}, {rule('Deny', S)}]")
    )
    assert verdict(ps, DRACO, HARRY, 80) == "allowed"
    assert verdict(ps, DRACO, HARRY, 81) == "denied"


def test_egress_accept_still_needs_the_destination_ingress(tmp_path):
    # Accept: "No further egress ClusterNetworkPolicy or NetworkPolicy rules will be
    # processed but any ingress rules at the destination do apply".
    deny_in = cnp("s", "Admin", 1, S, ingress=f"[{rule('Deny', G)}]")
    accept_out = cnp("g", "Admin", 1, G, egress=f"[{rule('Accept', S, 'egress')}]")
    d = engine(tmp_path, deny_in, accept_out).decide(HARRY, DRACO, 80, "TCP")
    assert (d.verdict, d.denied_by) == ("denied", "ingress")
    assert d.egress_rules == ("ClusterNetworkPolicy/g#egress[0]",)


# -- peers, ports, hairpin ---------------------------------------------------------------


def test_networks_match_cluster_internal_addresses_too(tmp_path):
    # "cluster-internal traffic will be checked against the rule as well".
    egress = "[{action: Deny, to: [{networks: [10.0.2.0/24]}]}]"
    ps = engine(tmp_path, cnp("nets", "Admin", 1, G, egress=egress))
    assert verdict(ps, HARRY, DRACO) == "denied"
    assert verdict(ps, HARRY, CEDRIC) == "allowed"


def test_nodes_peer_matches_node_labels(tmp_path):
    role = "{key: node-role.kubernetes.io/control-plane, operator: Exists}"
    egress = f"[{{action: Deny, to: [{{nodes: {{matchExpressions: [{role}]}}}}]}}]"
    ps = engine(tmp_path, cnp("nets", "Admin", 1, G, egress=egress))
    cp = Endpoint("host", ip="172.18.0.2", node="node-1")
    worker = Endpoint("host", ip="172.18.0.3", node="node-2")
    assert verdict(ps, HARRY, cp, 10250) == "denied"  # its own node: Admin rules still apply
    assert verdict(ps, HARRY, worker, 10250) == "allowed"


def test_port_range_and_named_port(tmp_path):
    ingress = (
        "[{action: Deny, from: [{namespaces: {}}], protocols: "
        "[{tcp: {destinationPort: {range: {start: 8000, end: 8100}}}}, "
        "{destinationNamedPort: metrics}]}]"
    )
    ps = engine(tmp_path, cnp("p", "Admin", 1, G, ingress))
    named = pod_endpoint(
        G, {"app": "x"}, ip="10.0.1.9", ports=(ContainerPort(9100, "TCP", "metrics"),)
    )
    assert [verdict(ps, DRACO, HARRY, p) for p in (7999, 8000, 8100, 8101)] == [
        "allowed",
        "denied",
        "denied",
        "allowed",
    ]
    assert verdict(ps, DRACO, named, 9100) == "denied"
    assert verdict(ps, DRACO, HARRY, 9100) == "allowed"  # no such named port on harry
    assert ps.decide(DRACO, HARRY, None, "ICMP").is_allowed  # protocols given: ICMP unmatched


def test_hairpin_is_judged_by_cluster_policies(tmp_path):
    # CNPAdminTierHairpin: "Under CNP, this hairpin traffic is subject to ingress policy".
    ps = engine(tmp_path, cnp("h", "Admin", 1, G, f"[{rule('Deny', G)}]"))
    assert verdict(ps, HARRY, HARRY) == "denied"


def test_mixed_with_cilium_policies(tmp_path):
    cilium = f"""apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: only-ravenclaw, namespace: {G}}}
spec:
  endpointSelector: {{}}
  ingress: [{{fromEndpoints: [{{matchLabels: {{k8s:io.kubernetes.pod.namespace: {R}}}}}]}}]
"""
    ps = engine(tmp_path, cilium, cnp("a", "Admin", 1, G, f"[{rule('Accept', S)}]"))
    assert verdict(ps, DRACO, HARRY) == "allowed"  # Admin Accept before the CNP tier
    assert verdict(ps, LUNA, HARRY) == "allowed"
    assert verdict(ps, CEDRIC, HARRY) == "denied"  # the Cilium policy isolates harry


# -- refusals: one located line, never ignored ------------------------------------------


@pytest.mark.parametrize(
    ("spec_ingress", "message"),
    [
        (
            "[{action: Accept, from: [{networks: [10.0.0.0/8]}]}]",
            "ingress peers are namespaces or pods only",
        ),
        ("[{action: Allow, from: [{namespaces: {}}]}]", "must be Accept, Deny or Pass"),
        ("[{action: Deny, from: [{}]}]", "exactly one of namespaces, pods must be set"),
        ("[" + ", ".join([rule("Deny", S)] * 26) + "]", "26 rules, at most 25"),
    ],
    ids=["ingress-cidr", "bad-action", "empty-peer", "26-rules"],
)
def test_refused_ingress(tmp_path, spec_ingress, message):
    with pytest.raises(PolicyError, match=message) as info:
        engine(tmp_path, cnp("bad", "Admin", 1, G, spec_ingress))
    assert "p.yaml" in str(info.value)


def test_refused_priority_and_tier(tmp_path):
    with pytest.raises(PolicyError, match="from 0 to 1000, got 1001"):
        engine(tmp_path, cnp("bad", "Admin", 1001, G, f"[{rule('Deny', S)}]"))
    with pytest.raises(PolicyError, match="must be Admin or Baseline"):
        engine(tmp_path, cnp("bad", "Developer", 1, G, f"[{rule('Deny', S)}]"))


def test_refused_domain_names_without_evidence_and_nodes_without_labels(tmp_path):
    dn = "[{action: Accept, to: [{domainNames: [api.example.com]}]}]"
    with pytest.raises(PolicyError, match="without DNS evidence"):
        engine(tmp_path, cnp("dn", "Admin", 1, G, egress=dn))
    nodes = "[{action: Deny, to: [{nodes: {matchLabels: {a: b}}}]}]"
    with pytest.raises(PolicyError, match="no node labels"):
        engine(tmp_path, cnp("nets", "Admin", 1, G, egress=nodes), inventory=Inventory())


def test_domain_names_with_recorded_answers(tmp_path):
    doc = cnp(
        "dn", "Admin", 1, G, egress="[{action: Accept, to: [{domainNames: ['*.example.com']}]}]"
    )
    doc = doc.replace(
        "metadata: {name: dn}",
        "metadata: {name: dn, annotations: {evidence.netpol-recommender.io/fqdns: "
        """'{"198.51.100.7/32": ["api.example.com"]}'}}""",
    )
    base = cnp("deny", "Baseline", 1, G, egress="[{action: Deny, to: [{networks: [0.0.0.0/0]}]}]")
    ps = engine(tmp_path, doc, base)
    assert verdict(ps, HARRY, Endpoint("world", ip="198.51.100.7"), 443) == "allowed"
    assert verdict(ps, HARRY, Endpoint("world", ip="198.51.100.8"), 443) == "denied"


# -- the writer: limits, guardrails, determinism ----------------------------------------


def _obj(rules: list[dict], direction: str = "egress") -> dict:
    return {
        "apiVersion": "policy.networking.k8s.io/v1alpha2",
        "kind": "ClusterNetworkPolicy",
        "metadata": {"name": "big"},
        "spec": {"tier": "Admin", "priority": 1, "subject": {"namespaces": {}}, direction: rules},
    }


def test_fit_limits_splits_networks_rules_and_objects():
    nets = [f"10.0.{i}.0/24" for i in range(30)]
    one = fit_limits(_obj([{"name": "r", "action": "Accept", "to": [{"networks": nets}]}]))
    assert len(one) == 1
    assert [len(p["networks"]) for p in one[0]["spec"]["egress"][0]["to"]] == [25, 5]
    many = [{"name": f"r{i}", "action": "Accept", "to": [{"namespaces": {}}]} for i in range(30)]
    parts = fit_limits(_obj(many))
    assert [p["metadata"]["name"] for p in parts] == ["big", "big-2"]
    assert [len(p["spec"]["egress"]) for p in parts] == [25, 5]
    assert {p["spec"]["priority"] for p in parts} == {1}
    assert [e for p in parts for e in schema_errors(p)] == []
    mixed = [{**r, "action": "Deny" if i % 2 else "Accept"} for i, r in enumerate(many)]
    with pytest.raises(Unexpressible, match="mixed actions"):
        fit_limits(_obj(mixed))


def test_schema_rejects_what_the_crd_rejects():
    ok = _obj([{"name": "r", "action": "Accept", "to": [{"namespaces": {}}]}])
    assert schema_errors(ok) == []
    bad = [
        {**ok, "spec": {**ok["spec"], "priority": 1001}},
        {**ok, "spec": {**ok["spec"], "tier": "Developer"}},
        _obj([{"action": "Accept", "from": [{"networks": ["10.0.0.0/8"]}]}], "ingress"),
        _obj([{"name": "r", "action": "Accept", "to": [{"namespaces": {}, "nodes": {}}]}]),
        _obj([{"name": "r", "action": "Accept", "to": [{"namespaces": {}}]}] * 26),
    ]
    assert [bool(schema_errors(b)) for b in bad] == [True] * len(bad)


def _scraped(ns: str) -> NetworkPolicy:
    prom = Peer(
        pod_selector=LabelSelector((("app", "prometheus"),)),
        namespace_selector=LabelSelector((("kubernetes.io/metadata.name", "monitoring"),)),
    )
    front = Peer(pod_selector=LabelSelector((("app", "web"),)))
    return NetworkPolicy(
        ns,
        "web",
        LabelSelector((("app", "web"),)),
        ("Ingress",),
        ingress=(
            Rule((front,), (PolicyPort("TCP", 8080),)),
            Rule((prom,), (PolicyPort("TCP", 9090),)),
        ),
    )


def _deny(ns: str) -> NetworkPolicy:
    return NetworkPolicy(ns, "default-deny", LabelSelector(), ("Ingress", "Egress"))


def test_one_scraper_over_many_namespaces_becomes_an_admin_accept(tmp_path):
    policies = [p for ns in ("a", "b", "c") for p in (_scraped(ns), _deny(ns))]
    plan = plan_cluster_policies(policies, Inventory())
    names = [o["metadata"]["name"] for o in plan.cluster]
    assert names == ["guardrail-scrape-monitoring-prometheus", "baseline-default-deny"]
    web = next(p for p in plan.policies if p.key == "a/web")
    assert len(web.ingress or ()) == 1  # the scraper's rule moved cluster-wide
    assert any("reaches 3 namespaces" in n for n in plan.notes)
    files = render_cnp_tree(policies, "", Inventory())
    out = tmp_path / "out"
    for rel, text in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    loaded = load_policies([str(out)])
    ps = compile_all_kinds(loaded.policies, [], loaded.cluster, Inventory())
    prom = pod_endpoint("monitoring", {"app": "prometheus"}, ip="10.9.0.1")
    pods = {ns: pod_endpoint(ns, {"app": "web"}, ip=f"10.1.0.{i}") for i, ns in enumerate("abc")}
    assert [verdict(ps, prom, pods[ns], 9090) for ns in "abc"] == ["allowed"] * 3
    assert verdict(ps, prom, pods["a"], 8080) == "denied"
    assert verdict(ps, pods["b"], pods["a"], 8080) == "denied"  # other namespace, not web


def test_two_scraped_namespaces_stay_namespaced():
    policies = [p for ns in ("a", "b") for p in (_scraped(ns), _deny(ns))]
    plan = plan_cluster_policies(policies, Inventory())
    assert [o["metadata"]["name"] for o in plan.cluster] == ["baseline-default-deny"]


def test_plan_ignores_input_order():
    policies = [p for ns in ("a", "b", "c") for p in (_scraped(ns), _deny(ns))]
    a = render_cnp_tree(policies, "", Inventory())
    assert render_cnp_tree(list(reversed(policies)), "", Inventory()) == a


def test_ip_block_with_except_keeps_dns_namespaced():
    block = Peer(ip_block=IPBlock("10.96.0.0/16", ("10.96.0.1/32",)))
    dns = [
        NetworkPolicy(ns, "allow-dns", LabelSelector(), ("Egress",), egress=(Rule((block,)),))
        for ns in ("a", "b")
    ]
    plan = plan_cluster_policies([*dns, _deny("a"), _deny("b")], Inventory())
    assert "guardrail-dns" not in [o["metadata"]["name"] for o in plan.cluster]
    assert any("networks has no except" in n for n in plan.notes)
    assert {p.key for p in plan.policies} >= {"a/allow-dns", "b/allow-dns"}


def test_cli_round_trip_on_the_simulated_shop(small_sim, tmp_path, capsys):
    """recommend --kind clusternetworkpolicy, then shadow of the training window: the
    tiers deny exactly what the v1 output denies (the unlearned connections)."""
    flows, inv = str(small_sim / "flows-train.jsonl.gz"), str(small_sim / "inventory.json")
    totals = {}
    for kind in ("networkpolicy", "clusternetworkpolicy"):
        out, report = tmp_path / kind, tmp_path / f"{kind}.json"
        args = ["--flows", flows, "--inventory", inv]
        assert main(["recommend", *args, "--kind", kind, "--out", str(out)]) == 0
        assert main(["shadow", *args, "--policies", str(out), "--json", str(report)]) == 0
        totals[kind] = json.loads(report.read_text())["totals"]
    capsys.readouterr()
    assert (tmp_path / "clusternetworkpolicy" / "_cluster" / "guardrail-dns.yaml").exists()
    assert totals["clusternetworkpolicy"] == totals["networkpolicy"]
    assert totals["networkpolicy"]["connections"] > 100


def test_refusal_names_the_line_and_the_cli_exits_2(small_sim, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: policy.networking.k8s.io/v1alpha2\n"
        "kind: ClusterNetworkPolicy\n"
        "metadata: {name: bad}\n"
        "spec:\n"
        "  tier: Admin\n"
        "  priority: 1\n"
        "  subject: {namespaces: {}}\n"
        "  ingress:\n"
        "    - action: Deny\n"
        "      from:\n"
        "        - networks: [10.0.0.0/8]\n"
    )
    args = ["--inventory", str(small_sim / "inventory.json")]
    rc = main(
        [
            "shadow",
            "--policies",
            str(bad),
            *args,
            "--flows",
            str(small_sim / "flows-train.jsonl.gz"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err == [
        f"error: {bad}:11: document 1: spec.ingress[0].from[0]: unsupported peer 'networks' "
        "(ingress peers are namespaces or pods only)"
    ]


@pytest.mark.parametrize(
    ("ingress", "expected"),
    [
        # api.Rule.Ingress: "If omitted or empty, this rule does not apply at ingress."
        ("ingress: []", "allowed"),
        ("ingressDeny: []", "allowed"),
        # One empty rule is a rule: it selects no peer, so harry is isolated.
        ("ingress: [{}]", "denied"),
    ],
)
def test_cilium_empty_section_does_not_isolate(tmp_path, ingress, expected):
    cilium = f"""apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {{name: empty, namespace: {G}}}
spec:
  endpointSelector: {{}}
  {ingress}
"""
    assert verdict(engine(tmp_path, cilium), DRACO, HARRY) == expected
