"""netpol lint on CiliumNetworkPolicy and ClusterNetworkPolicy objects (NPL050-NPL059).

Inventory: the lint fixture (shop: deployment/web, pod api-1, pod db-1; other:
client-1; kube-system: coredns-1). Each case is a small file written here; the
expected line is counted in the text below (line 1 is ``apiVersion``).
"""

from __future__ import annotations

import json
from pathlib import Path

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.lint import KindDoc, LintReport, lint_docs, read_policy_docs
from recommender.report.lint import render_text, report_dict
from tests.conftest import FIXTURES

INVENTORY = FIXTURES / "lint" / "inventory.yaml"

FQDN_NO_DNS = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toFQDNs: [{matchName: api.example.com}]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""

DNS_FOR_ALL = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-dns, namespace: shop}
spec:
  endpointSelector: {}
  egress:
    - toEndpoints:
        - matchLabels: {k8s-app: kube-dns, k8s:io.kubernetes.pod.namespace: kube-system}
      toPorts:
        - ports: [{port: "53", protocol: UDP}]
          rules: {dns: [{matchPattern: "*"}]}
"""

WORLD = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: web
  namespace: shop
  annotations: {evidence.netpol-recommender.io/fqdns: '{"203.0.113.5/32": ["a.example.com"]}'}
spec:
  endpointSelector: {matchLabels: {app: web}}
  egress:
    - toEntities: [world]
      toPorts: [{ports: [{port: "443", protocol: TCP}]}]
"""

PUBLIC_INGRESS = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEntities: [world]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
  egress:
    - toEntities: [world]
"""

CILIUM_DEFAULT_DENY = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec:
  endpointSelector: {}
  ingress: [{}]
  egress: [{}]
"""

NODE_SELECTOR = """apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: host-fw, namespace: shop}
spec:
  nodeSelector: {}
  ingress: [{fromEntities: [cluster]}]
"""


def _cnp(name: str, body: str, tier: str = "Admin") -> str:
    return f"""apiVersion: policy.networking.k8s.io/v1alpha2
kind: ClusterNetworkPolicy
metadata: {{name: {name}}}
spec:
  tier: {tier}
  priority: 10
  subject: {{namespaces: {{matchLabels: {{kubernetes.io/metadata.name: shop}}}}}}
{body}"""


V1_WEB_INGRESS = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress]
  ingress:
    - from: [{podSelector: {matchLabels: {app: api}}}]
"""

PASS_INGRESS = """  ingress:
    - action: Pass
      from: [{namespaces: {}}]
"""


def _lint(tmp_path: Path, *docs: str, namespaces: tuple[str, ...] = ("shop",)) -> LintReport:
    path = tmp_path / "p.yaml"
    path.write_text("---\n".join(docs))
    kinds: list[KindDoc] = []
    policy_docs, _ = read_policy_docs([str(path)], None, kinds)
    return lint_docs(policy_docs, read_inventory([INVENTORY]), namespaces, kind_docs=kinds)


def _hits(report: LintReport, rule_id: str) -> list[tuple[str | None, str, int | None, str | None]]:
    return [(f.policy, f.severity, f.line, f.path) for f in report.findings if f.rule_id == rule_id]


def test_fqdn_without_dns_rule_is_an_error(tmp_path: Path) -> None:
    report = _lint(tmp_path, FQDN_NO_DNS)
    assert _hits(report, "NPL050") == [
        ("shop/web", "error", 7, "spec.egress[0].toFQDNs"),
    ]
    assert "shop/deployment/web" in next(
        f.message for f in report.findings if f.rule_id == "NPL050"
    )


def test_fqdn_with_a_dns_rule_selecting_the_pods_passes(tmp_path: Path) -> None:
    assert _hits(_lint(tmp_path, FQDN_NO_DNS, DNS_FOR_ALL), "NPL050") == []


def test_world_entity_with_narrow_evidence(tmp_path: Path) -> None:
    report = _lint(tmp_path, WORLD)
    assert _hits(report, "NPL051") == [("shop/web", "warning", 10, "spec.egress[0].toEntities")]
    message = next(f.message for f in report.findings if f.rule_id == "NPL051")
    assert "203.0.113.5/32" in message
    assert "toCIDRSet" in message


def test_world_entity_ingress_is_a_note_egress_a_warning(tmp_path: Path) -> None:
    report = _lint(tmp_path, PUBLIC_INGRESS)
    assert _hits(report, "NPL051") == [
        ("shop/web", "note", 7, "spec.ingress[0].fromEntities"),
        ("shop/web", "warning", 10, "spec.egress[0].toEntities"),
    ]


def test_cnp_over_the_rule_limit_is_reported_at_its_line(tmp_path: Path) -> None:
    rules = "".join(
        f"    - {{action: Accept, to: [{{networks: [10.0.{i}.0/24]}}]}}\n" for i in range(26)
    )
    report = _lint(tmp_path, _cnp("big", "  egress:\n" + rules))
    assert _hits(report, "NPL052") == [
        ("ClusterNetworkPolicy/big", "error", 8, "spec.egress"),
    ]
    # The API refuses it: no other finding repeats why.
    assert _hits(report, "NPL059") == []


def test_cnp_cidr_ingress_peer_is_an_error(tmp_path: Path) -> None:
    body = "  ingress:\n    - action: Deny\n      from: [{networks: [192.0.2.0/24]}]\n"
    report = _lint(tmp_path, _cnp("cidr-in", body))
    assert _hits(report, "NPL053") == [
        ("ClusterNetworkPolicy/cidr-in", "error", 10, "spec.ingress[0].from[0]"),
    ]
    assert "ipBlock" in next(f.message for f in report.findings if f.rule_id == "NPL053")


def test_pass_that_no_namespace_policy_handles(tmp_path: Path) -> None:
    # web is selected for ingress by its NetworkPolicy; api-1 and db-1 are not.
    report = _lint(tmp_path, V1_WEB_INGRESS, _cnp("pass", PASS_INGRESS))
    # The CNP is the second document: 8 lines of NetworkPolicy and "---" come first.
    assert _hits(report, "NPL054") == [
        ("ClusterNetworkPolicy/pass", "warning", 18, "spec.ingress[0]"),
    ]
    message = next(f.message for f in report.findings if f.rule_id == "NPL054")
    assert message.startswith("Pass for 2 of 3 subject workloads")
    assert "shop/pod/api-1" in message
    assert "shop/pod/db-1" in message
    assert "shop/deployment/web" not in message


def test_pass_in_the_baseline_tier(tmp_path: Path) -> None:
    report = _lint(tmp_path, _cnp("base", PASS_INGRESS, tier="Baseline"))
    assert [m for _, _, _, m in _hits(report, "NPL054")] == ["spec.ingress[0]"]
    assert "Baseline" in next(f.message for f in report.findings if f.rule_id == "NPL054")


def test_refused_object_gets_a_note(tmp_path: Path) -> None:
    report = _lint(tmp_path, NODE_SELECTOR)
    hits = _hits(report, "NPL059")
    assert [(p, s) for p, s, _, _ in hits] == [("shop/host-fw", "note")]
    assert "nodeSelector" in next(f.message for f in report.findings if f.rule_id == "NPL059")


def test_cilium_default_deny_counts_for_coverage(tmp_path: Path) -> None:
    bare = _lint(tmp_path, FQDN_NO_DNS)
    # Only web is selected (egress): NPL010 both ways, NPL011 for the others.
    assert {f.message.split(" is not")[0] for f in bare.findings if f.rule_id == "NPL011"} == {
        "workload shop/deployment/web",
        "workload shop/pod/api-1",
        "workload shop/pod/db-1",
    }
    covered = _lint(tmp_path, CILIUM_DEFAULT_DENY)
    assert _hits(covered, "NPL010") == []
    assert _hits(covered, "NPL011") == []
    # Every shop pod is isolated for egress with no DNS rule: NPL012 names the CNP.
    assert {p for p, *_ in _hits(covered, "NPL012")} == {"shop/default-deny"}


def test_other_kinds_are_counted_in_text_and_json(tmp_path: Path) -> None:
    report = _lint(tmp_path, CILIUM_DEFAULT_DENY, _cnp("pass", PASS_INGRESS))
    assert report.kinds == {"CiliumNetworkPolicy": 1, "ClusterNetworkPolicy": 1}
    text = render_text(report)
    assert text.splitlines()[-1].startswith(
        "note: also read 1 CiliumNetworkPolicy, 1 ClusterNetworkPolicy"
    )
    assert report_dict(report)["summary"]["other_kinds"] == report.kinds


def test_cli_lints_a_cilium_only_set(tmp_path: Path, capsys) -> None:
    (tmp_path / "p.yaml").write_text(FQDN_NO_DNS)
    out = tmp_path / "lint.json"
    code = main(
        ["lint", str(tmp_path / "p.yaml"), "--inventory", str(INVENTORY), "--json", str(out)]
    )
    assert code == 3  # NPL050 is an error
    data = json.loads(out.read_text())
    assert "NPL050" in {f["id"] for f in data["findings"]}
    assert "NPL050" in capsys.readouterr().out
