"""NetworkPolicy <-> Kubernetes YAML/JSON, with located errors.

Reading accepts files and directories of YAML or JSON: multi-document files,
``List`` objects (``kubectl get networkpolicies -A -o json``) and single objects.
Other kinds in the same files (Deployments, kustomization files, ...) are skipped
and reported in :class:`LoadResult`. Files are decoded as the API server decodes
them (:mod:`recommender.policy_io.strict_yaml`: duplicate keys and ambiguous YAML 1.1
scalars refused), and a policy is checked field by field
(:mod:`recommender.semantics.policy_fields`: unknown fields and wrong types) before it is
validated. An invalid policy raises :class:`recommender.errors.PolicyError`
naming the file, the line, the 1-based document index and the field path.

Namespace: a policy without ``metadata.namespace`` takes ``default_namespace``
from the caller (for example the namespace a kustomize directory is deployed in);
when the caller gives none it takes ``"default"``, as ``kubectl apply`` without
``-n`` would with a default context.

Defaulting follows the API server: ``policyTypes`` (see
:func:`default_policy_types`) and ``protocol: TCP`` on ports. ``None`` and empty
lists stay apart in the model, so a round trip keeps what was written.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

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
from recommender.policy_io.strict_yaml import item_node, locate, read_documents
from recommender.semantics.cilium import CiliumPolicy, is_cilium_policy, parse_cilium_policy
from recommender.semantics.cnp_rules import ClusterPolicy, is_cluster_policy, load_cluster_policy
from recommender.semantics.policy_fields import describe_value, policy_findings
from recommender.semantics.validate import Finding

API_VERSION = "networking.k8s.io/v1"
#: apiVersions whose NetworkPolicy has the v1 shape (extensions/v1beta1 was removed in 1.16).
ACCEPTED_API_VERSIONS: frozenset[str] = frozenset({API_VERSION, "extensions/v1beta1"})
POLICY_FILE_SUFFIXES: tuple[str, ...] = (".yaml", ".yml", ".json")
FALLBACK_NAMESPACE = "default"


@dataclass
class LoadResult:
    """What :func:`load_policies` found.

    ``skipped`` lists ``(source, kind)`` for every object that is not a NetworkPolicy;
    ``raw`` holds the policy dicts as read (same order as ``policies``);
    ``warnings`` holds non-fatal validation findings (the API server would accept).
    """

    policies: list[NetworkPolicy] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    raw: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[tuple[str, Finding]] = field(default_factory=list)
    #: CiliumNetworkPolicies (``cilium.io/v2``), evaluated by ``semantics.cilium``.
    cilium: list[CiliumPolicy] = field(default_factory=list)
    #: ClusterNetworkPolicies (``policy.networking.k8s.io/v1alpha2``), ``semantics.cnp``.
    cluster: list[ClusterPolicy] = field(default_factory=list)

    def skipped_note(self) -> str | None:
        """One line reporting the skipped objects by kind, or None when none were.

        >>> LoadResult(skipped=[("a#1", "v1/Service"), ("b#1", "v1/Service")]).skipped_note()
        'skipped 2 objects that are not NetworkPolicies (Service 2)'
        """
        if not self.skipped:
            return None
        kinds = Counter(kind.rsplit("/", 1)[-1] for _, kind in self.skipped)
        shown = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        return f"skipped {len(self.skipped)} objects that are not NetworkPolicies ({shown})"


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def default_policy_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    """policyTypes as the API server defaults them, in canonical order.

    SetDefaults_NetworkPolicy: "if len(PolicyTypes) == 0 ... PolicyTypes =
    [Ingress]; if len(Egress) != 0 append Egress" -- so an absent *or empty*
    ``policyTypes`` means Ingress, plus Egress only with at least one egress rule.
    Order as written does not matter; duplicates collapse.

    >>> default_policy_types({"egress": [{}]})
    ('Ingress', 'Egress')
    >>> default_policy_types({"egress": []})
    ('Ingress',)
    >>> default_policy_types({"policyTypes": ["Egress", "Ingress"]})
    ('Ingress', 'Egress')
    """
    written = spec.get("policyTypes") or []
    if not written:
        return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)
    return tuple(t for t in ("Ingress", "Egress") if t in written)


def parse_policy(
    obj: Mapping[str, Any],
    source: str = "<memory>",
    doc: int | None = None,
    default_namespace: str | None = None,
    findings: Sequence[Finding] | None = None,
) -> NetworkPolicy:
    """Turn one NetworkPolicy dict into the model, validating it.

    Parameters
    ----------
    obj
        The object as decoded from YAML/JSON.
    source
        File name used in errors and in ``NetworkPolicy.source``.
    doc
        1-based document index in ``source``, for errors.
    default_namespace
        Namespace for a policy without one (``"default"`` when None).
    findings
        ``policy_findings(obj)`` when the caller has them already.

    Raises
    ------
    PolicyError
        When the API server would reject the object (first error found).
    """
    for finding in policy_findings(obj) if findings is None else findings:
        if finding.severity == "error":
            raise PolicyError(source, finding.path, f"{finding.message} [{finding.id}]", doc=doc)
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    namespace = meta.get("namespace") or default_namespace or FALLBACK_NAMESPACE
    where = source if doc is None else f"{source}#{doc}"
    return NetworkPolicy(
        namespace=namespace,
        name=meta["name"],
        pod_selector=_selector(spec.get("podSelector")) or LabelSelector(),
        policy_types=default_policy_types(spec),
        ingress=_rules(spec.get("ingress"), "from"),
        egress=_rules(spec.get("egress"), "to"),
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        annotations=tuple(sorted((meta.get("annotations") or {}).items())),
        source=where,
    )


def _selector(obj: Mapping[str, Any] | None) -> LabelSelector | None:
    if obj is None:
        return None
    labels = obj.get("matchLabels")
    exprs = obj.get("matchExpressions")
    return LabelSelector(
        match_labels=None if labels is None else tuple(sorted(labels.items())),
        match_expressions=None
        if exprs is None
        else tuple(
            LabelRequirement(e["key"], e["operator"], tuple(e.get("values") or ())) for e in exprs
        ),
    )


def _rules(items: Sequence[Any] | None, peer_key: str) -> tuple[Rule, ...] | None:
    if items is None:
        return None
    # A null list item decodes to the zero-value rule, i.e. ``{}``.
    return tuple(_rule(item or {}, peer_key) for item in items)


def _rule(obj: Mapping[str, Any], peer_key: str) -> Rule:
    peers = obj.get(peer_key)
    ports = obj.get("ports")
    return Rule(
        peers=None if peers is None else tuple(_peer(p) for p in peers),
        ports=None if ports is None else tuple(_port(p or {}) for p in ports),
    )


def _peer(obj: Mapping[str, Any]) -> Peer:
    block = obj.get("ipBlock")
    return Peer(
        pod_selector=_selector(obj.get("podSelector")),
        namespace_selector=_selector(obj.get("namespaceSelector")),
        ip_block=None
        if block is None
        else IPBlock(cidr=block["cidr"], except_=tuple(block.get("except") or ())),
    )


def _port(obj: Mapping[str, Any]) -> PolicyPort:
    # SetDefaults_NetworkPolicyPort: "Default any undefined Protocol fields to TCP."
    return PolicyPort(
        protocol=obj.get("protocol") or "TCP",
        port=obj.get("port"),
        end_port=obj.get("endPort"),
    )


# ---------------------------------------------------------------------------
# Loading files
# ---------------------------------------------------------------------------


def load_policies(paths: Sequence[str], default_namespace: str | None = None) -> LoadResult:
    """Read every NetworkPolicy in ``paths`` (files or directories, recursively).

    Directories are walked in sorted order and only ``*.yaml``, ``*.yml`` and
    ``*.json`` files are read. Non-policy objects are skipped and listed.

    Raises
    ------
    InputError
        A path is missing or a file is not valid YAML/JSON.
    PolicyError
        A NetworkPolicy is invalid.
    """
    result = LoadResult()
    for path in policy_files(paths):
        for doc in read_documents(path):
            _collect(result, doc.obj, doc.node, (path, doc.index), default_namespace, prefix="")
    return result


def policy_files(paths: Sequence[str]) -> Iterator[str]:
    """Files to read, directories walked in sorted order (``*.yaml``, ``*.yml``, ``*.json``)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith(POLICY_FILE_SUFFIXES):
                        yield str(Path(root) / name)
        elif path.is_file():
            yield str(path)
        else:
            raise InputError(str(path), "no such file or directory")


def classify_object(obj: Any, path: str, doc: int) -> str:
    """``"list"``, ``"policy"`` or ``"other"`` for one decoded object.

    Raises
    ------
    PolicyError
        The object is not a mapping, or its ``kind``/``apiVersion`` is not a string
        (the API server could not even tell what it is).
    """
    if not isinstance(obj, dict):
        raise PolicyError(path, "<document>", "not an object", doc=doc)
    for key in ("kind", "apiVersion"):
        value = obj.get(key)
        if value is not None and not isinstance(value, str):
            raise PolicyError(path, key, f"must be a string, not {describe_value(value)}", doc=doc)
    kind = obj.get("kind") or ""
    if kind.endswith("List") and isinstance(obj.get("items"), list):
        return "list"
    if kind == "NetworkPolicy" and obj.get("apiVersion") in ACCEPTED_API_VERSIONS:
        return "policy"
    return "other"


def located(exc: PolicyError, node: Any, prefix: str) -> PolicyError:
    """``exc`` (field relative to the object of ``node``) with the line and the List prefix."""
    relative = "" if exc.field == "<document>" else exc.field
    field = (prefix + relative).rstrip(".") or "<document>"
    return PolicyError(exc.path, field, exc.reason, doc=exc.doc, line=locate(node, relative))


def _collect(
    result: LoadResult,
    obj: Any,
    node: Any,
    where: tuple[str, int],
    default_namespace: str | None,
    prefix: str,
) -> None:
    path, doc = where
    source = f"{path}#{doc}{'/' + prefix.rstrip('.') if prefix else ''}"
    try:
        kind = classify_object(obj, path, doc)
        if kind == "other" and is_cilium_policy(obj):
            result.cilium.extend(parse_cilium_policy(obj, path, default_namespace, doc))
            return
        if kind == "other" and is_cluster_policy(obj):
            result.cluster.append(load_cluster_policy(obj, path, doc))
            return
        findings = policy_findings(obj) if kind == "policy" else []
        policy = (
            parse_policy(obj, path, doc, default_namespace, findings) if kind == "policy" else None
        )
    except PolicyError as exc:
        raise located(exc, node, prefix) from exc
    if kind == "list":
        for i, item in enumerate(obj["items"]):
            _collect(
                result,
                item,
                item_node(node, "items", i),
                where,
                default_namespace,
                f"{prefix}items[{i}].",
            )
    elif policy is None:
        result.skipped.append((source, f"{obj.get('apiVersion')}/{obj.get('kind')}"))
    else:
        result.policies.append(_with_source(policy, source))
        result.raw.append(obj)
        result.warnings.extend((source, f) for f in findings if f.severity != "error")


def _with_source(policy: NetworkPolicy, source: str) -> NetworkPolicy:
    return replace(policy, source=source)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def policy_to_dict(p: NetworkPolicy) -> dict[str, Any]:
    """Kubernetes dict of a policy, fields in Kubernetes order, absent fields omitted.

    >>> from recommender.model import LabelSelector, NetworkPolicy
    >>> policy_to_dict(NetworkPolicy("ns", "deny", LabelSelector(), ("Ingress",)))["spec"]
    {'podSelector': {}, 'policyTypes': ['Ingress']}
    """
    meta: dict[str, Any] = {"name": p.name, "namespace": p.namespace}
    if p.labels:
        meta["labels"] = dict(p.labels)
    if p.annotations:
        meta["annotations"] = dict(p.annotations)
    spec: dict[str, Any] = {
        "podSelector": selector_to_dict(p.pod_selector),
        "policyTypes": list(p.policy_types),
    }
    if p.ingress is not None:
        spec["ingress"] = [_rule_to_dict(r, "from") for r in p.ingress]
    if p.egress is not None:
        spec["egress"] = [_rule_to_dict(r, "to") for r in p.egress]
    return {"apiVersion": API_VERSION, "kind": "NetworkPolicy", "metadata": meta, "spec": spec}


def selector_to_dict(s: LabelSelector) -> dict[str, Any]:
    """``metav1.LabelSelector`` dict; a None field is omitted, an empty one kept."""
    out: dict[str, Any] = {}
    if s.match_labels is not None:
        out["matchLabels"] = dict(s.match_labels)
    if s.match_expressions is not None:
        out["matchExpressions"] = [_requirement_to_dict(r) for r in s.match_expressions]
    return out


def _requirement_to_dict(r: LabelRequirement) -> dict[str, Any]:
    out: dict[str, Any] = {"key": r.key, "operator": r.operator}
    if r.values:
        out["values"] = list(r.values)
    return out


def _rule_to_dict(r: Rule, peer_key: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if r.peers is not None:
        out[peer_key] = [_peer_to_dict(p) for p in r.peers]
    if r.ports is not None:
        out["ports"] = [_port_to_dict(p) for p in r.ports]
    return out


def _peer_to_dict(p: Peer) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.ip_block is not None:
        block: dict[str, Any] = {"cidr": p.ip_block.cidr}
        if p.ip_block.except_:
            block["except"] = list(p.ip_block.except_)
        out["ipBlock"] = block
    if p.namespace_selector is not None:
        out["namespaceSelector"] = selector_to_dict(p.namespace_selector)
    if p.pod_selector is not None:
        out["podSelector"] = selector_to_dict(p.pod_selector)
    return out


def _port_to_dict(p: PolicyPort) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": p.protocol}
    if p.port is not None:
        out["port"] = p.port
    if p.end_port is not None:
        out["endPort"] = p.end_port
    return out


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    """Block style, lists indented under their key like ``kubectl`` output."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _dump(obj: Any) -> str:
    text: str = yaml.dump(
        obj,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
    )
    return text


def dump_policy_yaml(p: NetworkPolicy) -> str:
    """One policy as a YAML document (no ``---``); byte-stable for equal input."""
    return _dump(policy_to_dict(p))


def dump_policies_yaml(ps: Sequence[NetworkPolicy]) -> str:
    """Several policies as a multi-document YAML stream, in the order given."""
    return "".join(f"---\n{dump_policy_yaml(p)}" for p in ps)
