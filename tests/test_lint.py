"""netpol lint: findings on hand-made fixtures and the real sample apps, SARIF, goldens, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recommender.cli.parser import main
from recommender.findings import RULES
from recommender.inventory.files import read_inventory
from recommender.inventory.manifests import inventory_from_manifests
from recommender.lint import LintReport, lint_docs, read_policy_docs
from recommender.policy_io.sarif import to_sarif
from recommender.report.lint import render_text, report_dict
from tests.conftest import FIXTURES, GOLDEN, SAMPLES

LINT = FIXTURES / "lint"
INVENTORY = LINT / "inventory.yaml"
SOCK = SAMPLES / "apps" / "sock-shop"
BOUTIQUE = SAMPLES / "apps" / "online-boutique" / "upstream"


def _lint(name: str, namespaces: tuple[str, ...] | None = ("shop",)) -> LintReport:
    docs, _ = read_policy_docs([str(LINT / name)])
    return lint_docs(docs, read_inventory([INVENTORY]), namespaces)


def _ids(report: LintReport) -> set[str]:
    return {f.rule_id for f in report.findings}


def _by_id(report: LintReport, rule_id: str) -> list[tuple[str | None, int | None, str | None]]:
    return [(f.policy, f.line, f.path) for f in report.findings if f.rule_id == rule_id]


# ---------------------------------------------------------------------------
# One fixture per finding, with the located line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "rule_id", "expected"),
    [
        ("allow-all-rule.yaml", "NPL001", [("shop/web-open", 7, "spec.ingress[0]")]),
        ("world-cidr.yaml", "NPL003", [("shop/api-internet", 9, "spec.egress[0].to[0].ipBlock")]),
        (
            "namespace-name-label.yaml",
            "NPL023",
            [("shop/web-from-other", 9, "spec.ingress[0].from[0].namespaceSelector")],
        ),
        ("selects-nothing.yaml", "NPL020", [("shop/cart", 5, "spec.podSelector")]),
        ("selects-nothing.yaml", "NPL021", [("shop/cart", 7, "spec.ingress[0].from[0]")]),
        ("ephemeral-label.yaml", "NPL030", [("shop/web-pinned", 5, "spec.podSelector")]),
        ("redundant.yaml", "NPL040", [("shop/api-copy", 13, None)]),
        ("redundant.yaml", "NPL041", [("shop/web", 28, "spec.ingress[1]")]),
        ("redundant.yaml", "NPL004", [("shop/web", 26, "spec.ingress[0].from[0]")]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_finding_and_location(fixture: str, rule_id: str, expected: list[object]) -> None:
    assert _by_id(_lint(fixture), rule_id) == expected


def test_clean_set_has_no_policy_findings() -> None:
    report = _lint("good.yaml")
    # Every pod of shop is isolated both ways, DNS is allowed, nothing is redundant:
    # the namespace-wide default-deny is never reported redundant (it covers future pods).
    assert report.findings == []
    assert not report.fails("warning")


def test_default_deny_egress_without_dns() -> None:
    report = _lint("egress-no-dns.yaml")
    gaps = [f for f in report.findings if f.rule_id == "NPL012"]
    assert sorted(f.message.split()[1] for f in gaps) == [
        "shop/deployment/web",
        "shop/pod/api-1",
        "shop/pod/db-1",
    ]
    assert all(f.line == 3 and "kube-system/coredns-1" in f.message for f in gaps)
    # The same pods with the DNS policy of good.yaml added: no gap.
    docs, _ = read_policy_docs([str(LINT / "egress-no-dns.yaml"), str(LINT / "good.yaml")])
    assert "NPL012" not in {
        f.rule_id for f in lint_docs(docs, read_inventory([INVENTORY])).findings
    }


def test_dns_gap_through_an_except_hole() -> None:
    # 0.0.0.0/0 except 10.0.0.0/8 on 443 only: the DNS pod (10.1.0.2) is unreachable.
    assert _by_id(_lint("world-cidr.yaml"), "NPL012") == [("shop/api-internet", 3, None)]


def test_namespace_and_workload_coverage() -> None:
    report = _lint("allow-all-rule.yaml")
    assert sorted(f.message.split()[5] for f in report.findings if f.rule_id == "NPL010") == [
        "egress",
        "ingress",
    ]
    uncovered = sorted(
        (f.message.split()[1], f.message.split()[6].rstrip(":"))
        for f in report.findings
        if f.rule_id == "NPL011"
    )
    # web-open isolates web for ingress only.
    assert uncovered == [
        ("shop/deployment/web", "egress"),
        ("shop/pod/api-1", "egress"),
        ("shop/pod/api-1", "ingress"),
        ("shop/pod/db-1", "egress"),
        ("shop/pod/db-1", "ingress"),
    ]
    # web-open isolates web but admits everything: removing it changes nothing.
    assert _by_id(report, "NPL040") == [("shop/web-open", 3, None)]


def test_namespace_scope_defaults_to_every_namespace_with_workloads() -> None:
    report = _lint("good.yaml", namespaces=None)
    assert {f.policy for f in report.findings if f.rule_id == "NPL010"} == {
        "other/*",
        "kube-system/*",
    }


def test_invalid_fields_are_error_findings_with_lines() -> None:
    report = _lint("invalid.yaml")
    invalid = [
        (f.rule_id, f.line, f.severity) for f in report.findings if f.rule_id.startswith("NP1")
    ]
    assert invalid == [
        ("NP101", 3, "error"),
        ("NP106", 8, "error"),
        ("NP107", 10, "error"),
        ("NP111", 12, "error"),
    ]
    assert report.invalid == 1
    assert report.policies == 0
    assert report.fails("error")


def test_name_label_hint_only_when_the_value_names_a_namespace(tmp_path: Path) -> None:
    doc = (LINT / "namespace-name-label.yaml").read_text().replace("name: other}", "name: nope}")
    (tmp_path / "p.yaml").write_text(doc)
    docs, _ = read_policy_docs([str(tmp_path / "p.yaml")])
    ids = {f.rule_id for f in lint_docs(docs, read_inventory([INVENTORY]), ["shop"]).findings}
    assert "NPL022" in ids
    assert "NPL023" not in ids


# ---------------------------------------------------------------------------
# Real sample apps
# ---------------------------------------------------------------------------


def test_sock_shop_upstream_selectors_do_not_match_its_pods() -> None:
    inv = inventory_from_manifests(
        [SOCK / "upstream" / "deploy" / "kubernetes" / "manifests"], "sock-shop"
    )
    docs, _ = read_policy_docs([str(SOCK / "upstream_policies.yaml")])
    report = lint_docs(docs, inv)
    # The pods are labelled name=carts; the upstream policies say name=cart.
    assert _by_id(report, "NPL020") == [("sock-shop/cart-access", 11, "spec.podSelector")]
    peers = {(p, path) for p, _, path in _by_id(report, "NPL021")}
    assert ("sock-shop/carts-db-access", "spec.ingress[0].from[0]") in peers
    # No egress policy at all upstream: every workload is open for egress.
    assert len(_by_id(report, "NPL011")) == 14
    assert not report.fails("error")


def test_online_boutique_egress_is_allow_all() -> None:
    inv = inventory_from_manifests(
        [BOUTIQUE / "release" / "kubernetes-manifests.yaml"], "onlineboutique"
    )
    docs, _ = read_policy_docs(
        [str(BOUTIQUE / "kustomize" / "components" / "network-policies")], "onlineboutique"
    )
    report = lint_docs(docs, inv)
    allow_all = _by_id(report, "NPL001")
    assert len([a for a in allow_all if a[2] == "spec.egress[0]"]) == 12
    assert ("onlineboutique/frontend", 27, "spec.ingress[0]") in allow_all
    assert {"NPL010", "NPL011", "NPL012"}.isdisjoint(_ids(report))  # deny-all + open egress


# ---------------------------------------------------------------------------
# Outputs: SARIF structure, goldens
# ---------------------------------------------------------------------------


def test_sarif_structure() -> None:
    report = _lint("redundant.yaml")
    log = to_sarif(report.findings, base=str(LINT.parent.parent.parent))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == sorted(_ids(report))
    for r in rules:
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
        assert r["shortDescription"]["text"]
    assert len(run["results"]) == len(report.findings)
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"]
        assert res["level"] in ("error", "warning", "note")
        assert res["message"]["text"]
    located = [r for r in run["results"] if "physicalLocation" in r["locations"][0]]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in located} == {
        "tests/fixtures/lint/redundant.yaml"
    }
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in located)


def test_every_rule_is_documented() -> None:
    doc = (LINT.parents[2] / "docs" / "lint.md").read_text()
    for rule_id, rule in RULES.items():
        assert f"`{rule_id}`" in doc
        assert rule.name in doc


def _check_golden(path: Path, text: str, update: bool) -> None:
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text()


def test_golden_outputs(update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(LINT.parents[2])
    docs, _ = read_policy_docs(["tests/fixtures/lint"])
    docs = [d for d in docs if "inventory" not in d.file]
    report = lint_docs(docs, read_inventory([INVENTORY]))
    _check_golden(GOLDEN / "lint" / "fixtures.txt", render_text(report), update_golden)
    _check_golden(
        GOLDEN / "lint" / "fixtures.json",
        json.dumps(report_dict(report), indent=2) + "\n",
        update_golden,
    )
    _check_golden(
        GOLDEN / "lint" / "fixtures.sarif",
        json.dumps(to_sarif(report.findings, base="."), indent=2) + "\n",
        update_golden,
    )


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def test_cli_exit_codes_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["lint", "--inventory", str(INVENTORY), "--namespace", "shop"]
    assert main([*base, str(LINT / "good.yaml")]) == 0
    sarif, js = tmp_path / "out.sarif", tmp_path / "out.json"
    code = main(
        [*base, str(LINT / "namespace-name-label.yaml"), "--sarif", str(sarif), "--json", str(js)]
    )
    assert code == 3
    assert "lint: 1 errors" in capsys.readouterr().err
    assert json.loads(js.read_text())["summary"]["error"] == 1
    assert json.loads(sarif.read_text())["runs"][0]["results"][0]["level"] == "error"
    # Existing outputs are kept without --force.
    assert main([*base, str(LINT / "good.yaml"), "--json", str(js)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main([*base, str(LINT / "allow-all-rule.yaml"), "--fail-on", "warning"]) == 3
    assert main([*base, str(LINT / "invalid.yaml"), "--fail-on", "never"]) == 0


def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lint", str(tmp_path / "missing.yaml"), "--inventory", str(INVENTORY)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "missing.yaml: no such file" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: [\n")
    assert main(["lint", str(bad), "--inventory", str(INVENTORY)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{bad}:4: invalid YAML" in err
    assert "Traceback" not in err
    assert main(["lint", str(LINT / "good.yaml")]) == 2  # --inventory or --manifests required


def test_duplicate_policy_names() -> None:
    docs, _ = read_policy_docs([str(LINT / "good.yaml"), str(LINT / "redundant.yaml")])
    report = lint_docs(docs, read_inventory([INVENTORY]), ["shop"])
    dups = [f for f in report.findings if f.rule_id == "NPL005"]
    assert [(f.file, f.line, f.policy) for f in dups] == [
        (str(LINT / "redundant.yaml"), 4, "shop/api"),
        (str(LINT / "redundant.yaml"), 22, "shop/web"),
    ]
    assert f"{LINT / 'good.yaml'}:38" in dups[0].message
