"""Plain data shared by every stage: flow columns, inventory objects, policies.

The core works on these values only. Readers (``recommender.flows``) build them,
writers (``recommender.policy_io``) serialise them. Values are frozen dataclasses; label
maps are kept as plain dicts but excluded from hashing. Where Kubernetes tells
"absent" apart from "empty" the field is ``None`` for absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from recommender.vocabulary import IDENTITY_COLUMNS

# ---------------------------------------------------------------------------
# Flow records (FORMATS.md section 1.1). One declared column list; readers and
# engines produce tables (pandas/Arrow/DuckDB relations) with exactly these.
# ---------------------------------------------------------------------------

# The shared words (peer kinds, verdicts, protocols) live in recommender.vocabulary.

#: The observation store ``netpol observe`` writes when no ``--store`` is given.
DEFAULT_STORE = "netpol.duckdb"

#: Columns of the normalized flow table, in order. Label maps are canonical JSON
#: strings (``json.dumps(d, sort_keys=True, separators=(",", ":"))``) so engines can
#: group on them; ``dst_names`` and ``policies`` are lists of strings.
FLOW_COLUMNS: tuple[str, ...] = (
    "time_start",  # timestamp UTC
    "time_end",
    "source_format",  # hubble_jsonpb, hubble_legacy_json, ...
    "observer",  # node name
    "reporter",  # src / dst / both / unknown
    "src_kind",
    "src_cluster",
    "src_namespace",
    "src_pod",
    "src_workload_kind",
    "src_workload_name",
    "src_labels",  # canonical JSON of stable pod labels
    "src_service_account",
    "src_ip",
    "src_port",
    "dst_kind",
    "dst_cluster",
    "dst_namespace",
    "dst_pod",
    "dst_workload_kind",
    "dst_workload_name",
    "dst_labels",
    "dst_service_account",
    "dst_ip",
    "dst_port",  # listener port after orientation; None for ICMP and for replies
    "protocol",  # TCP UDP SCTP ICMPv4 ICMPv6 or IP:<n>
    "icmp_type",
    "ip_version",
    "dst_service_namespace",
    "dst_service_name",
    "dst_names",  # list[str] of FQDNs
    "verdict",
    "drop_reason",
    "is_policy_drop",  # bool: DROPPED for a policy reason
    "policies",  # list[str]
    "is_reply",  # True / False / None (unknown)
    "observation_point",
    "event_type",  # int
    "conn_count",  # connections this record stands for after de-duplication
    "raw_ref",  # file:line
)

#: Columns of the observation table (the aggregate every later stage works on).
OBSERVATION_COLUMNS: tuple[str, ...] = (
    *IDENTITY_COLUMNS[:12],
    "dst_names",  # list[str]
    *IDENTITY_COLUMNS[12:],  # port, protocol
    "connections",
    "first_seen",
    "last_seen",
    "verdicts",  # dict verdict -> connection count (plus "policy_denied")
    "refs",  # list[str] of file:line, at most a few
)


# ---------------------------------------------------------------------------
# Inventory
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerPort:
    """A declared container port. ``name`` is an IANA_SVC_NAME or None."""

    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Pod:
    """A pod as the inventory saw it."""

    namespace: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    uid: str | None = None
    owner_kind: str | None = None  # top owner: Deployment, StatefulSet, DaemonSet, CronJob, ...
    owner_name: str | None = None
    ips: tuple[str, ...] = ()
    host_ip: str | None = None
    host_network: bool = False
    node: str | None = None
    phase: str | None = None
    container_ports: tuple[ContainerPort, ...] = ()
    service_account: str | None = None
    created: str | None = None
    deleted: str | None = None

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def workload(self) -> str:
        """Readable owner name, ``kind/name``; a bare pod is its own workload."""
        if self.owner_kind and self.owner_name:
            return f"{self.owner_kind.lower()}/{self.owner_name}"
        return f"pod/{self.name}"


@dataclass(frozen=True)
class Namespace:
    """A namespace. ``labels`` always holds ``kubernetes.io/metadata.name``."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class ServicePort:
    port: int
    protocol: str = "TCP"
    name: str | None = None
    target_port: int | str | None = None  # None means "same as port"


@dataclass(frozen=True)
class Service:
    namespace: str
    name: str
    type: str = "ClusterIP"
    selector: Mapping[str, str] | None = field(default=None, hash=False)
    cluster_ips: tuple[str, ...] = ()
    ports: tuple[ServicePort, ...] = ()
    external_name: str | None = None


@dataclass(frozen=True)
class Endpoint:
    addresses: tuple[str, ...]
    pod: str | None = None  # namespace/name from targetRef when kind == Pod
    node: str | None = None
    ready: bool | None = None


@dataclass(frozen=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str | None
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[ServicePort, ...] = ()


@dataclass(frozen=True)
class Node:
    name: str
    addresses: tuple[str, ...] = ()
    pod_cidrs: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Inventory:
    """A point-in-time snapshot of the cluster objects the tool needs.

    ``network_policies`` keeps the raw policy dicts; parse them with
    ``recommender.policy_io.policy_yaml``.
    """

    namespaces: tuple[Namespace, ...] = ()
    pods: tuple[Pod, ...] = ()
    services: tuple[Service, ...] = ()
    endpoint_slices: tuple[EndpointSlice, ...] = ()
    nodes: tuple[Node, ...] = ()
    network_policies: tuple[Mapping[str, object], ...] = field(default=(), hash=False)
    sources: tuple[str, ...] = ()  # files (or the API context) it was read from


# ---------------------------------------------------------------------------
# NetworkPolicy (networking.k8s.io/v1), after API-server defaulting.
# ---------------------------------------------------------------------------

SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector. ``match_labels`` None = absent/null; () = empty map.

    Both absent (or empty) selects everything.
    """

    match_labels: tuple[tuple[str, str], ...] | None = None
    match_expressions: tuple[LabelRequirement, ...] | None = None

    @property
    def is_empty(self) -> bool:
        """True when the selector selects every object."""
        return not self.match_labels and not self.match_expressions


@dataclass(frozen=True)
class IPBlock:
    cidr: str
    except_: tuple[str, ...] = ()


@dataclass(frozen=True)
class Peer:
    """A NetworkPolicyPeer. Exactly one of (selectors, ip_block) is meaningful."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None


@dataclass(frozen=True)
class PolicyPort:
    """A NetworkPolicyPort after defaulting: ``protocol`` is never None."""

    protocol: str = "TCP"
    port: int | str | None = None  # None = every port of the protocol
    end_port: int | None = None


@dataclass(frozen=True)
class Rule:
    """An ingress or egress rule. ``peers``/``ports`` None or () both mean "all"."""

    peers: tuple[Peer, ...] | None = None
    ports: tuple[PolicyPort, ...] | None = None


@dataclass(frozen=True)
class NetworkPolicy:
    """A NetworkPolicy with ``policy_types`` already defaulted.

    ``ingress``/``egress`` are the rules as written (None when absent); the
    semantics treat None and () alike under a listed policy type.
    """

    namespace: str
    name: str
    pod_selector: LabelSelector
    policy_types: tuple[str, ...]
    ingress: tuple[Rule, ...] | None = None
    egress: tuple[Rule, ...] | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    source: str | None = None  # "path#doc" where it was read from

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"
