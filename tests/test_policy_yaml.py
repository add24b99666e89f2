"""Reading and writing NetworkPolicies: formats, defaulting, located errors, round trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from recommender.errors import InputError, PolicyError
from recommender.model import (
    IPBlock,
    LabelRequirement,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.policy_io.policy_yaml import (
    default_policy_types,
    dump_policies_yaml,
    dump_policy_yaml,
    load_policies,
    parse_policy,
    policy_to_dict,
)
from tests.conftest import FIXTURES, SAMPLES

APPS = SAMPLES / "apps"
BOUTIQUE_KUSTOMIZE = APPS / "online-boutique/upstream/kustomize/components/network-policies"
SOCK_SHOP_POLICY_DIR = APPS / "sock-shop/upstream/deploy/kubernetes/manifests-policy"
FORMATS = FIXTURES / "policies" / "formats"


def _policy(spec: dict, name: str = "p", namespace: str | None = "ns") -> dict:
    meta = {"name": name} | ({"namespace": namespace} if namespace else {})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": spec,
    }


# -- real upstream policies ---------------------------------------------------


@pytest.mark.parametrize(
    ("app", "count"), [("bookinfo", 2), ("online-boutique", 13), ("sock-shop", 13)]
)
def test_upstream_policy_files_parse(app, count):
    result = load_policies([str(APPS / app / "upstream_policies.yaml")])
    assert len(result.policies) == count
    assert result.skipped == []


def test_bookinfo_istiod_fields():
    istiod = load_policies([str(APPS / "bookinfo/upstream_policies.yaml")]).policies[0]
    assert istiod.key == "istio-system/istiod"
    assert istiod.pod_selector.match_labels == (("app", "istiod"), ("istio.io/rev", "default"))
    assert istiod.policy_types == ("Ingress", "Egress")
    assert istiod.egress == (Rule(),)
    assert istiod.ingress[0] == Rule(ports=(PolicyPort("TCP", 15017),))
    assert len(istiod.ingress[1].ports or ()) == 5


def test_boutique_kustomize_dir_takes_default_namespace_and_skips_component():
    result = load_policies([str(BOUTIQUE_KUSTOMIZE)], default_namespace="onlineboutique")
    assert len(result.policies) == 13
    assert {p.namespace for p in result.policies} == {"onlineboutique"}
    assert [kind for _, kind in result.skipped] == ["kustomize.config.k8s.io/v1alpha1/Component"]
    deny = next(p for p in result.policies if p.name == "deny-all")
    assert deny.pod_selector == LabelSelector()
    assert deny.policy_types == ("Ingress", "Egress")
    assert (deny.ingress, deny.egress) == (None, None)
    frontend = next(p for p in result.policies if p.name == "frontend")
    assert frontend.ingress == (Rule(),)


def test_boutique_kustomize_without_namespace_uses_default():
    result = load_policies([str(BOUTIQUE_KUSTOMIZE)])
    assert {p.namespace for p in result.policies} == {"default"}


def test_sock_shop_manifest_dir():
    result = load_policies([str(SOCK_SHOP_POLICY_DIR)])
    assert len(result.policies) == 13
    assert [kind for _, kind in result.skipped] == ["v1/Namespace"]
    by_name = {p.name: p for p in result.policies}
    # `matchLabels:` with no value is null: selects every pod of the namespace.
    assert by_name["cortex-access"].pod_selector == LabelSelector(None, None)
    # No policyTypes and no egress: only Ingress.
    assert {p.policy_types for p in result.policies} == {("Ingress",)}
    cart = by_name["cart-access"]
    assert cart.pod_selector.match_labels == (("name", "cart"),)
    assert [p.pod_selector.match_labels for p in cart.ingress[0].peers] == [
        (("name", "front-end"),),
        (("name", "orders"),),
    ]


# -- formats ------------------------------------------------------------------


def test_mixed_kinds_skipped_and_reported():
    result = load_policies([str(FORMATS / "mixed-kinds.yaml")], default_namespace="web")
    assert [p.key for p in result.policies] == ["web/web-allow-dns"]
    src = str(FORMATS / "mixed-kinds.yaml")
    assert result.skipped == [(f"{src}#1", "apps/v1/Deployment"), (f"{src}#4", "v1/Service")]
    assert result.policies[0].source == f"{src}#2"
    peer = result.policies[0].egress[0].peers[0]
    assert peer.namespace_selector.match_labels == (("kubernetes.io/metadata.name", "kube-system"),)


def test_kubectl_list_json():
    result = load_policies([str(FORMATS / "kubectl-list.json")])
    assert [p.key for p in result.policies] == ["data/db-ingress", "data/default-deny"]
    assert result.skipped[0][1] == "v1/ConfigMap"
    assert result.skipped[0][0].endswith("kubectl-list.json#1/items[2]")
    db = result.policies[0]
    assert db.annotations == (("owner", "team-a"),)
    assert db.ingress[0].peers[0].ip_block == IPBlock("172.17.0.0/16", ("172.17.1.0/24",))
    expr = db.ingress[0].peers[1].namespace_selector.match_expressions
    assert expr == (LabelRequirement("env", "In", ("prod", "staging")),)
    assert db.ingress[0].ports[1] == PolicyPort("TCP", 9100, 9200)
    assert len(result.raw) == 2


def test_directory_walk_is_sorted_and_recursive():
    result = load_policies([str(FIXTURES / "policies")])
    sources = [p.source for p in result.policies]
    assert any("formats/kubectl-list.json" in (s or "") for s in sources)
    files = [s.split("#")[0] for s in sources]
    assert files == sorted(files, key=lambda f: (Path(f).parent != FIXTURES / "policies", f))


# -- defaulting -------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({}, ("Ingress",)),
        ({"policyTypes": []}, ("Ingress",)),
        ({"egress": [{}]}, ("Ingress", "Egress")),
        ({"egress": []}, ("Ingress",)),
        ({"egress": None, "ingress": [{}]}, ("Ingress",)),
        ({"policyTypes": ["Egress"], "ingress": [{}]}, ("Egress",)),
        ({"policyTypes": ["Egress", "Ingress"]}, ("Ingress", "Egress")),
    ],
    ids=[
        "absent",
        "empty-list",
        "egress-rule",
        "empty-egress",
        "ingress-only",
        "egress-only",
        "reversed",
    ],
)
def test_policy_types_defaulting(spec, expected):
    assert default_policy_types(spec) == expected
    assert parse_policy(_policy({"podSelector": {}} | spec)).policy_types == expected


def test_protocol_defaults_to_tcp_and_null_items_are_zero_values():
    p = parse_policy(_policy({"podSelector": None, "ingress": [None, {"ports": [{"port": 80}]}]}))
    assert p.pod_selector == LabelSelector()
    assert p.ingress == (Rule(), Rule(ports=(PolicyPort("TCP", 80),)))


def test_none_and_empty_stay_apart():
    p = parse_policy(
        _policy(
            {"podSelector": {"matchLabels": {}}, "ingress": [], "egress": [{"to": [], "ports": []}]}
        )
    )
    assert p.pod_selector == LabelSelector(match_labels=())
    assert p.ingress == ()
    assert p.egress == (Rule(peers=(), ports=()),)


def test_missing_namespace_takes_caller_default():
    assert parse_policy(_policy({}, namespace=None), default_namespace="team").namespace == "team"
    assert parse_policy(_policy({}, namespace=None)).namespace == "default"
    assert parse_policy(_policy({}, namespace="x"), default_namespace="team").namespace == "x"


# -- errors -------------------------------------------------------------------


def test_invalid_policy_error_names_file_document_and_field(tmp_path):
    bad = _policy({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]}, name="bad")
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump_all([_policy({}, name="ok"), bad]))
    with pytest.raises(PolicyError) as err:
        load_policies([str(f)])
    assert err.value.doc == 2
    assert err.value.field == "spec.ingress[0].ports[0].port"
    line = f.read_text().splitlines().index("    - port: 70000") + 1
    assert err.value.line == line
    assert str(err.value).startswith(f"{f}:{line}: document 2: spec.ingress[0].ports[0].port: ")


def test_invalid_list_item_error_names_item(tmp_path):
    item = _policy({"podSelector": {}, "policyTypes": ["Ingres"]})
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [item]}))
    with pytest.raises(PolicyError, match=r"items\[0\]\.spec\.policyTypes\[0\]"):
        load_policies([str(f)])


def test_yaml_syntax_error_is_located(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("apiVersion: v1\nkind: [NetworkPolicy\nmetadata: {}\n")
    with pytest.raises(InputError) as err:
        load_policies([str(f)])
    assert err.value.line is not None
    assert "invalid YAML" in err.value.reason


def test_invalid_json_is_located(tmp_path):
    f = tmp_path / "broken.json"
    f.write_text('{"kind": "List",\n "items": [}\n')
    with pytest.raises(InputError, match="invalid JSON") as err:
        load_policies([str(f)])
    assert err.value.line == 2


def test_missing_path():
    with pytest.raises(InputError, match="no such file"):
        load_policies(["/nonexistent/policies"])


def test_non_object_document(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(PolicyError, match="not an object"):
        load_policies([str(f)])


def test_host_bits_are_a_warning_not_an_error(tmp_path):
    f = tmp_path / "w.yaml"
    peer = {"ipBlock": {"cidr": "10.0.1.1/4"}}
    f.write_text(yaml.safe_dump(_policy({"podSelector": {}, "ingress": [{"from": [peer]}]})))
    result = load_policies([str(f)])
    assert len(result.policies) == 1
    assert [w.id for _, w in result.warnings] == ["NP150"]


# -- writing ------------------------------------------------------------------

EXPECTED_YAML = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: api
  namespace: shop
  labels:
    app.kubernetes.io/managed-by: netpol-recommender
  annotations:
    netpol.io/connections: '12'
spec:
  podSelector:
    matchLabels:
      app: api
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: web
          podSelector:
            matchExpressions:
              - key: tier
                operator: In
                values:
                  - fe
        - ipBlock:
            cidr: 10.0.0.0/8
            except:
              - 10.1.0.0/16
      ports:
        - protocol: TCP
          port: 8080
          endPort: 8090
        - protocol: UDP
          port: dns
  egress: []
"""

API_POLICY = NetworkPolicy(
    namespace="shop",
    name="api",
    pod_selector=LabelSelector(match_labels=(("app", "api"),)),
    policy_types=("Ingress", "Egress"),
    ingress=(
        Rule(
            peers=(
                Peer(
                    pod_selector=LabelSelector(
                        match_expressions=(LabelRequirement("tier", "In", ("fe",)),)
                    ),
                    namespace_selector=LabelSelector(
                        match_labels=(("kubernetes.io/metadata.name", "web"),)
                    ),
                ),
                Peer(ip_block=IPBlock("10.0.0.0/8", ("10.1.0.0/16",))),
            ),
            ports=(PolicyPort("TCP", 8080, 8090), PolicyPort("UDP", "dns")),
        ),
    ),
    egress=(),
    labels=(("app.kubernetes.io/managed-by", "netpol-recommender"),),
    annotations=(("netpol.io/connections", "12"),),
)


def test_dump_policy_yaml_exact_bytes():
    assert dump_policy_yaml(API_POLICY) == EXPECTED_YAML


def test_policy_to_dict_key_order_and_omissions():
    d = policy_to_dict(API_POLICY)
    assert list(d) == ["apiVersion", "kind", "metadata", "spec"]
    assert list(d["metadata"]) == ["name", "namespace", "labels", "annotations"]
    assert list(d["spec"]) == ["podSelector", "policyTypes", "ingress", "egress"]
    bare = policy_to_dict(NetworkPolicy("n", "x", LabelSelector(), ("Ingress",)))
    assert bare["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    assert list(bare["metadata"]) == ["name", "namespace"]


def test_dump_policies_multi_document():
    other = NetworkPolicy("shop", "deny", LabelSelector(), ("Ingress",))
    text = dump_policies_yaml([API_POLICY, other])
    assert text.count("---\n") == 2
    docs = list(yaml.safe_load_all(text))
    assert docs == [policy_to_dict(API_POLICY), policy_to_dict(other)]
    assert dump_policies_yaml([API_POLICY, other]) == text


def _all_sample_policies() -> list[NetworkPolicy]:
    paths = [str(p) for p in sorted(APPS.glob("*/upstream_policies.yaml"))]
    paths += [str(FIXTURES / "policies")]
    return load_policies(paths).policies + [API_POLICY]


@pytest.mark.parametrize("policy", _all_sample_policies(), ids=lambda p: p.key)
def test_yaml_round_trip_is_identity(policy):
    back = parse_policy(yaml.safe_load(dump_policy_yaml(policy)), source="x")
    assert back == NetworkPolicy(**{**policy.__dict__, "source": "x"})
