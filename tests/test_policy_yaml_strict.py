"""Policy files read the way the API server reads them: duplicates, unknown fields, types, YAML 1.1.

Each case is one small file: the error must name the file, the line and the field,
and must be an InputError (exit 2), never a TypeError or a silently changed policy.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import InputError, PolicyError
from recommender.lint import read_policy_docs
from recommender.policy_io.policy_yaml import load_policies
from tests.fixtures.policies.mutate import RICH, mutate

HEAD = (
    "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
    "metadata: {name: web, namespace: shop}\n"
)


def _load(tmp_path: Path, text: str, name: str = "p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return load_policies([str(path)])


def _error(tmp_path: Path, text: str, name: str = "p.yaml") -> Any:
    with pytest.raises(InputError) as err:
        _load(tmp_path, text, name)
    return err.value


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- duplicate keys -------------------------------------------------------------

DUPLICATE_INGRESS = (
    HEAD
    + """\
spec:
  podSelector: {}
  ingress:
  - from:
    - podSelector: {matchLabels: {app: client}}
  ingress:
  - {}
"""
)


def test_duplicate_ingress_is_an_error_naming_the_second_key(tmp_path):
    err = _error(tmp_path, DUPLICATE_INGRESS)
    assert err.line == 9  # the second `ingress:`
    assert "duplicate key 'ingress' (first at line 6)" in str(err)
    assert str(err).startswith(f"{tmp_path / 'p.yaml'}:9: ")


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param(
            HEAD + "spec:\n  podSelector:\n    matchLabels: {app: a, app: b}\n",
            6,
            id="flow-mapping",
        ),
        pytest.param(
            "kind: List\napiVersion: v1\nitems:\n- "
            + HEAD.replace("\n", "\n  ")
            + "kind: NetworkPolicy\n",
            7,
            id="inside-a-list-item",
        ),
        pytest.param(HEAD + "metadata: {name: x}\nspec: {}\n", 4, id="top-level"),
    ],
)
def test_duplicate_keys_anywhere(tmp_path, text, line):
    err = _error(tmp_path, text)
    assert "duplicate key" in err.reason
    assert err.line == line


def test_duplicate_key_in_json_is_an_error_with_its_line(tmp_path):
    text = (
        '{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",\n'
        ' "metadata": {"name": "web"},\n "spec": {"podSelector": {}},\n "spec": {}}\n'
    )
    err = _error(tmp_path, text, "p.json")
    assert "duplicate key 'spec'" in err.reason
    assert err.line == 4


def test_duplicate_key_in_json_that_pyyaml_cannot_read_is_still_refused(tmp_path):
    text = '{\n\t"kind": "NetworkPolicy",\n\t"kind": "NetworkPolicy"}\n'  # tab-indented JSON
    assert "duplicate key 'kind'" in _error(tmp_path, text, "p.json").reason


def test_merge_keys_are_not_duplicates(tmp_path):
    text = (
        HEAD + "spec:\n  podSelector: &sel {matchLabels: {app: web}}\n"
        "  ingress:\n  - from:\n    - podSelector: {<<: *sel}\n"
    )
    policy = _load(tmp_path, text).policies[0]
    assert policy.ingress[0].peers[0].pod_selector.match_labels == (("app", "web"),)


def test_lint_refuses_duplicate_keys_too(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(DUPLICATE_INGRESS)
    with pytest.raises(InputError, match="duplicate key 'ingress'"):
        read_policy_docs([str(path)])


# -- unknown fields -------------------------------------------------------------

TYPO_INGRESS = (
    HEAD
    + """\
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingres:
  - from:
    - podSelector: {matchLabels: {app: client}}
"""
)

UNKNOWN = [
    ("top-level", "specs: {}\n", "specs", '(did you mean "spec"?)'),
    (
        "case-only",
        "spec: {podSelector: {}, policytypes: [Ingress]}\n",
        "spec.policytypes",
        '(did you mean "policyTypes"?)',
    ),
    (
        "metadata",
        "spec: {podSelector: {}}\nmetadata2: {}\n",
        "metadata2",
        '(did you mean "metadata"?)',
    ),
    ("spec", "spec: {podSelector: {}, egres: []}\n", "spec.egres", '(did you mean "egress"?)'),
    (
        "rule",
        "spec: {podSelector: {}, ingress: [{form: []}]}\n",
        "spec.ingress[0].form",
        '(did you mean "from"?)',
    ),
    (
        "egress-rule",
        "spec: {podSelector: {}, egress: [{from: []}]}\n",
        "spec.egress[0].from",
        "(known: ports, to)",
    ),
    (
        "peer-case",
        "spec: {podSelector: {}, ingress: [{from: [{PodSelector: {}}]}]}\n",
        "spec.ingress[0].from[0].PodSelector",
        '(did you mean "podSelector"?)',
    ),
    (
        "port",
        "spec: {podSelector: {}, ingress: [{ports: [{prot: TCP}]}]}\n",
        "spec.ingress[0].ports[0].prot",
        '(did you mean "port"?)',
    ),
    (
        "ip-block",
        "spec: {podSelector: {}, egress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, excepts: []}}]}]}\n",
        "spec.egress[0].to[0].ipBlock.excepts",
        '(did you mean "except"?)',
    ),
    (
        "selector",
        "spec: {podSelector: {matchLabel: {a: b}}}\n",
        "spec.podSelector.matchLabel",
        '(did you mean "matchLabels"?)',
    ),
    (
        "requirement",
        "spec: {podSelector: {matchExpressions: [{key: a, operator: In, value: [b]}]}}\n",
        "spec.podSelector.matchExpressions[0].value",
        '(did you mean "values"?)',
    ),
]


def test_typo_of_ingress_is_an_error_with_line_path_and_nearest_name(tmp_path):
    err = _error(tmp_path, TYPO_INGRESS)
    assert isinstance(err, PolicyError)
    assert err.field == "spec.ingres"
    assert err.line == 7
    assert str(err).endswith(
        'spec.ingres: unknown field "ingres" (did you mean "ingress"?) [NP118]'
    )


@pytest.mark.parametrize(
    ("body", "field", "hint"), [pytest.param(*c[1:], id=c[0]) for c in UNKNOWN]
)
def test_unknown_fields_everywhere(tmp_path, body, field, hint):
    text = (
        HEAD.replace("metadata: {name: web, namespace: shop}\n", "")
        + "metadata: {name: web, namespace: shop}\n"
        + body
    )
    err = _error(tmp_path, text)
    assert isinstance(err, PolicyError)
    assert err.field == field
    assert hint in err.reason
    assert err.line == _line_of(text, field.rsplit(".", 1)[-1] + ":")


def test_unknown_metadata_field_is_an_error_but_labels_are_free_form(tmp_path):
    ok = (
        HEAD.replace(
            "namespace: shop}",
            "namespace: shop, labels: {any.key/x: z}, annotations: {whatever: '1'}}",
        )
        + "spec: {podSelector: {}}\n"
    )
    assert _load(tmp_path, ok).policies[0].labels == (("any.key/x", "z"),)
    bad = HEAD.replace("namespace: shop}", "namespace: shop, lables: {a: b}}")
    assert 'did you mean "labels"' in _error(tmp_path, bad).reason


def test_kubectl_output_fields_and_status_and_lists_still_load(tmp_path):
    item = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "1-2",
            "generation": 3,
            "resourceVersion": "42",
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "managedFields": [
                {
                    "manager": "kubectl",
                    "operation": "Update",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}},
                    "time": "2026-01-01T00:00:00Z",
                }
            ],
        },
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        "status": {},
    }
    text = json.dumps(
        {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": [item]}
    )
    assert [p.key for p in _load(tmp_path, text, "l.json").policies] == ["shop/web"]
    yaml_ts = HEAD.replace("}", ", creationTimestamp: 2026-01-01T00:00:00Z}") + "spec: {}\n"
    assert _load(tmp_path, yaml_ts).policies[0].name == "web"  # an unquoted timestamp is a string


def test_unknown_field_inside_a_list_item_names_the_item(tmp_path):
    text = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "networking.k8s.io/v1",
                    "kind": "NetworkPolicy",
                    "metadata": {"name": "a"},
                    "spec": {"podSelector": {}, "ingres": []},
                }
            ],
        },
        indent=1,
    )
    err = _error(tmp_path, text, "l.json")
    assert err.field == "items[0].spec.ingres"
    assert err.line == _line_of(text, '"ingres"')


def test_lint_reports_an_unknown_field_as_a_finding(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(TYPO_INGRESS)
    docs, _ = read_policy_docs([str(path)])
    (doc,) = docs
    assert doc.policy is None  # not judged: what it allows is unclear
    assert [(f.id, f.path) for f in doc.findings] == [("NP118", "spec.ingres")]
    assert doc.line(doc.findings[0].path) == 7


# -- wrong types ----------------------------------------------------------------

WRONG_TYPES = [
    (
        "api-version-mapping",
        "apiVersion: {group: networking.k8s.io}\nkind: NetworkPolicy\n"
        "metadata: {name: web}\nspec: {}\n",
        "apiVersion",
        1,
    ),
    ("kind-list", "apiVersion: v1\nkind: [List]\n", "kind", 2),
    (
        "ports-string",
        HEAD + "spec:\n  podSelector: {}\n  ingress:\n  - ports: '80'\n",
        "spec.ingress[0].ports",
        7,
    ),
    ("pod-selector-list", HEAD + "spec:\n  podSelector: [app]\n", "spec.podSelector", 5),
    (
        "match-labels-number",
        HEAD + "spec:\n  podSelector: {matchLabels: {version: 2}}\n",
        "spec.podSelector.matchLabels[version]",
        5,
    ),
    (
        "policy-types-string",
        HEAD + "spec:\n  podSelector: {}\n  policyTypes: Ingress\n",
        "spec.policyTypes",
        6,
    ),
    (
        "end-port-string",
        HEAD + "spec:\n  podSelector: {}\n  ingress:\n  - ports: [{port: 80, endPort: '90'}]\n",
        "spec.ingress[0].ports[0].endPort",
        7,
    ),
    (
        "name-list",
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n"
        "  name: [web]\nspec: {}\n",
        "metadata.name",
        4,
    ),
    ("spec-string", HEAD + "spec: allow-all\n", "spec", 4),
    (
        "except-number",
        HEAD + "spec:\n  podSelector: {}\n  egress:\n"
        "  - to: [{ipBlock: {cidr: 10.0.0.0/8, except: [1]}}]\n",
        "spec.egress[0].to[0].ipBlock.except[0]",
        7,
    ),
]


@pytest.mark.parametrize(
    ("text", "field", "line"), [pytest.param(*c[1:], id=c[0]) for c in WRONG_TYPES]
)
def test_wrong_types_are_one_located_input_error(tmp_path, text, field, line):
    err = _error(tmp_path, text)
    assert isinstance(err, PolicyError)
    assert err.field == field
    assert err.line == line
    assert "must be" in err.reason
    assert "\n" not in str(err)


# -- YAML 1.1 surprises ---------------------------------------------------------

AMBIGUOUS = [
    ("base-60-port", "port: 1:20", "`1:20` (a YAML 1.1 base-60 number"),
    ("octal-port", "port: 0123", "`0123` (a YAML 1.1 octal number; PyYAML reads 83"),
    ("hex-port", "port: 0x50", "`0x50`"),
    ("float-port", "port: 80.0", "a float (80.0)"),
    ("go-float-port", "port: 1e3", "`1e3` (a number to Kubernetes' YAML reader"),
    ("go-octal-port", "port: 0o17", "`0o17`"),
    ("signed-port", "port: +80", "`+80`"),
    ("bool-protocol", "protocol: no", "`no` (a YAML 1.1 boolean"),
    ("bool-end-port", "port: 80, endPort: on", "`on` (a YAML 1.1 boolean"),
]


@pytest.mark.parametrize(("port", "message"), [pytest.param(*c[1:], id=c[0]) for c in AMBIGUOUS])
def test_yaml11_forms_in_ports_are_refused_not_coerced(tmp_path, port, message):
    text = HEAD + f"spec:\n  podSelector: {{}}\n  ingress:\n  - ports:\n    - {{{port}}}\n"
    err = _error(tmp_path, text)
    assert message in err.reason
    assert err.line == 8


@pytest.mark.parametrize("value", ["on", "yes", "Off", "y", "N", "1:20", "0123", "1.0", "1e3"])
def test_yaml11_forms_in_label_values_are_refused(tmp_path, value):
    text = HEAD + f"spec:\n  podSelector: {{matchLabels: {{flag: {value}}}}}\n"
    err = _error(tmp_path, text)
    assert err.field == "spec.podSelector.matchLabels[flag]"
    assert err.reason.startswith("must be a string, not ")


def test_quoted_and_plain_decimal_forms_are_accepted(tmp_path):
    text = (
        HEAD + "spec:\n  podSelector: {matchLabels: {flag: 'on', v: '0123'}}\n"
        "  ingress:\n  - ports: [{port: 80, endPort: 90}, {port: http}]\n"
    )
    policy = _load(tmp_path, text).policies[0]
    assert policy.pod_selector.match_labels == (("flag", "on"), ("v", "0123"))
    assert [(p.port, p.end_port) for p in policy.ingress[0].ports] == [(80, 90), ("http", None)]


def test_explicit_tag_with_a_bad_value_is_an_input_error(tmp_path):
    text = HEAD + "spec: {podSelector: {}, ingress: [{ports: [{port: !!float x}]}]}\n"
    err = _error(tmp_path, text)
    assert "invalid YAML" in err.reason


# -- fuzzing ----------------------------------------------------------------------


def test_the_rich_seed_is_valid(tmp_path):
    assert len(_load(tmp_path, RICH).policies) == 1


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 2**32 - 1))
def test_any_mutation_parses_or_is_an_input_error(tmp_path, seed):
    suffix, text = mutate(random.Random(seed))
    path = tmp_path / f"m{suffix}"
    path.write_text(text)
    for read in (load_policies, lambda paths: read_policy_docs(paths)):
        message = ""
        try:
            read([str(path)])
        except InputError as exc:  # anything else fails the property
            message = str(exc)
        assert "\n" not in message
