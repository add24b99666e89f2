"""Pod attribution of IP-only flow ends by IP *and time* (VPC flow logs).

VPC flow logs (AWS, GCP without GKE details) name no pod: an end is an IP
address and the record has a time window. Pod IPs are reused, so the IP alone
can name the wrong pod (FORMATS.md 2.7.3, 3.7). Each pod IP of the inventory
gets a validity span, and a flow end is the pod whose span overlaps the
record's window:

* ``valid_from`` = ``metadata.creationTimestamp``; unknown (NULL) = since ever.
* ``valid_to`` = ``metadata.deletionTimestamp``; else the creation time of the
  next pod created later with the same IP (an IP holds one pod at a time); else
  open (the pod still held it when the snapshot was taken).
* Exactly one overlapping span of a live pod -> that pod (by namespace and name:
  :mod:`recommender.semantics.resolve` then fills labels and owner as for Hubble).
* Otherwise the end stays an IP peer (``unknown``) with a reason, never a guess:
  ``ambiguous-ip-at-flow-time`` (several pods, e.g. two pods without creation
  time), ``ip-not-a-pod-at-flow-time`` (the IP was a pod's only at other times),
  ``ip-of-finished-pod`` (a ``Succeeded``/``Failed`` pod: its end is unknown).

IPs that are no pod's (nodes, Services, outside) are left to the IP-only
resolution. The reason travels as a ``netpol:unattributed=<reason>`` label of the
raw end, which the resolution keeps (it must not re-attribute by IP alone).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from recommender.model import Inventory, Pod
from recommender.semantics.resolve import UNATTRIBUTED_LABEL, is_live

#: Formats whose ends are attributed here (their raw ends carry no identity).
#: A FlowRecord table's ends without a namespace are addresses only, like a VPC log's;
#: so are Antrea's ends without a pod name and Inspektor Gadget's ``raw``/``svc`` ends.
#: (Only ends without an identity, ``e`` NULL, are attributed.)
IP_ONLY_FORMATS: tuple[str, ...] = (
    "aws_vpc",
    "gcp_vpc",
    "flowrecord",
    "antrea_antctl",
    "antrea_csv",
    "inspektor_gadget",
)
SPAN_COLUMNS: tuple[str, ...] = ("ip", "valid_from", "valid_to", "live", "e")


@dataclass(frozen=True)
class IpSpan:
    """One pod's hold on one IP. ``e``: the Hubble-endpoint JSON naming the pod."""

    ip: str
    valid_from: datetime | None
    valid_to: datetime | None
    live: bool
    e: str


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 time as naive UTC (the engines' TIMESTAMP), None when absent/invalid.

    >>> parse_time("2024-05-01T10:00:00Z")
    datetime.datetime(2024, 5, 1, 10, 0)
    """
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _pod_json(pod: Pod) -> str:
    return json.dumps({"namespace": pod.namespace, "pod_name": pod.name}, sort_keys=True)


def _ip_pods(inventory: Inventory) -> dict[str, list[Pod]]:
    found: dict[str, list[Pod]] = defaultdict(list)
    for pod in inventory.pods:
        if not pod.host_network:  # its IP is the node's: the IP-only resolution's case
            for ip in pod.ips:
                found[ip].append(pod)
    return found


def _spans_of(ip: str, pods: list[Pod]) -> list[IpSpan]:
    starts = [parse_time(p.created) for p in pods]
    spans = []
    for pod, start in zip(pods, starts, strict=True):
        end = parse_time(pod.deleted)
        if end is None and start is not None:
            later = [s for s in starts if s is not None and s > start]
            end = min(later) if later else None
        spans.append(IpSpan(ip, start, end, is_live(pod), _pod_json(pod)))
    return spans


def build_ip_spans(inventory: Inventory) -> list[IpSpan]:
    """Every pod IP's spans, sorted by IP and start (deterministic).

    >>> from recommender.model import Pod
    >>> old = Pod("shop", "web-a", ips=("10.0.0.5",), created="2024-05-01T10:00:00Z")
    >>> new = Pod("shop", "web-b", ips=("10.0.0.5",), created="2024-05-01T12:00:00Z")
    >>> [(s.e, s.valid_to) for s in build_ip_spans(Inventory(pods=(old, new)))][0]
    ('{"namespace": "shop", "pod_name": "web-a"}', datetime.datetime(2024, 5, 1, 12, 0))
    """
    spans = [s for ip, pods in _ip_pods(inventory).items() for s in _spans_of(ip, pods)]
    return sorted(spans, key=lambda s: (s.ip, s.valid_from or datetime.min, s.e))


def _marker(reason: str) -> str:
    return json.dumps({"labels": [f"{UNATTRIBUTED_LABEL}={reason}"]})


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _end_sql(side: str, alias: str) -> str:
    """The raw end ``{side}_ep`` after attribution against the joined spans ``alias``."""
    ep = f"p.{side}_ep"
    t0, t1 = "p.time_start", "coalesce(p.time_end, p.time_start)"
    hits = (
        f"list_filter({alias}.spans, lambda x: ({t1} IS NULL OR x.f IS NULL OR x.f <= {t1}) "
        f"AND ({t0} IS NULL OR x.t IS NULL OR {t0} < x.t))"
    )
    e = (
        f"CASE WHEN len({hits}) = 1 AND {hits}[1].live THEN {hits}[1].e "
        f"WHEN len({hits}) > 1 THEN {_lit(_marker('ambiguous-ip-at-flow-time'))} "
        f"WHEN len({hits}) = 1 THEN {_lit(_marker('ip-of-finished-pod'))} "
        f"ELSE {_lit(_marker('ip-not-a-pod-at-flow-time'))} END"
    )
    fields = ", ".join(
        f"'{f}': {ep}.{f}" for f in ("ip", "node", "names", "service_namespace", "service_name")
    )
    return (
        f"CASE WHEN {alias}.ip IS NULL THEN {ep} ELSE {{'e': ({e})::JSON, {fields}}} END "
        f"AS {side}_ep"
    )


def attributed_packets_sql(packets: str, spans: str) -> str:
    """``packets`` (oriented packets) with the IP-only ends of VPC records attributed.

    ``spans`` names a relation of :func:`build_ip_spans` rows (:data:`SPAN_COLUMNS`).
    """
    grouped = (
        f"(SELECT ip, list({{'f': valid_from, 't': valid_to, 'live': live, 'e': e}}) AS spans "
        f"FROM {spans} GROUP BY ip)"
    )
    ip_only = f"p.source_format IN ({', '.join(_lit(f) for f in IP_ONLY_FORMATS)})"
    joins = " ".join(
        f"LEFT JOIN {grouped} {a} ON {a}.ip = p.{s}_ep.ip AND {ip_only} AND p.{s}_ep.e IS NULL"
        for s, a in (("src", "sp_src"), ("dst", "sp_dst"))
    )
    return (
        f"SELECT p.* REPLACE ({_end_sql('src', 'sp_src')}, {_end_sql('dst', 'sp_dst')}) "
        f"FROM {packets} p {joins}"
    )


def span_rows(spans: Sequence[IpSpan]) -> dict[str, list[object]]:
    """Columns of ``spans`` for an Arrow table (see :data:`SPAN_COLUMNS`)."""
    return {c: [getattr(s, c) for s in spans] for c in SPAN_COLUMNS}
