"""IP -> pod / node / service / kube-apiserver, from an inventory snapshot.

Pure core: :func:`build_ip_index` and :func:`build_pod_index` turn an
:class:`~recommender.model.Inventory` into plain rows; engines load them as
small tables and join. :func:`resolved_columns` is the one SQL definition of
how an inventory entry overrides what Hubble said about an endpoint.

Rules (FORMATS.md 2.7.3, 3.3, 3.4):

* Pods in phase ``Succeeded``/``Failed`` are left out: their IP may already
  belong to another pod. ``hostNetwork`` pods share the node IP, so that IP
  resolves to the node (``host``), never to the pod.
* The endpoints of ``default/kubernetes`` are the kube-apiserver
  (``cluster_infra``), also when that IP is a node's.
* A Service ClusterIP is a ``service`` peer (an un-translated VIP).
* Two live pods with one IP (a stale snapshot) make the IP ``unknown`` with
  reason ``ambiguous-ip``: the tool does not guess.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from recommender.labels import encode_labels, stable_labels
from recommender.model import Inventory, Pod

EXCLUDED_PHASES = frozenset({"Succeeded", "Failed"})
APISERVER = ("default", "kubernetes")
#: Label of a raw end that IP-and-time attribution could not decide
#: (:mod:`recommender.inventory.ip_attribution`): its value is the reason, and the
#: end must not be re-attributed by IP alone.
UNATTRIBUTED_LABEL = "netpol:unattributed"
#: Lower wins when several objects claim one IP.
_PRIORITY = {"cluster_infra": 0, "pod": 1, "service": 2, "host": 3}


@dataclass(frozen=True)
class IpEntry:
    """What one IP is. ``detail`` names a cluster_infra peer or an unknown reason."""

    ip: str
    kind: str
    namespace: str | None = None
    pod: str | None = None
    labels: str | None = None  # canonical JSON of stable labels
    workload_kind: str | None = None
    workload_name: str | None = None
    service_account: str | None = None
    node: str | None = None
    service_namespace: str | None = None
    service_name: str | None = None
    detail: str | None = None


IP_INDEX_COLUMNS: tuple[str, ...] = tuple(IpEntry.__dataclass_fields__)
#: Endpoint fields the inventory may override (see :func:`resolved_columns`).
RESOLVED_FIELDS: tuple[str, ...] = (
    "kind",
    "detail",
    "namespace",
    "pod",
    "service_account",
    "node",
    "service_namespace",
    "service_name",
    "labels",
    "workload_kind",
    "workload_name",
    "j",
)


def is_live(pod: Pod) -> bool:
    """True when the pod's IP may be used for lookup."""
    return pod.phase not in EXCLUDED_PHASES


def _pod_entry(ip: str, pod: Pod) -> IpEntry:
    return IpEntry(
        ip=ip,
        kind="pod",
        namespace=pod.namespace,
        pod=pod.name,
        labels=encode_labels(stable_labels(pod.labels)),
        workload_kind=pod.owner_kind,
        workload_name=pod.owner_name,
        service_account=pod.service_account,
        node=pod.node,
    )


def _candidates(inventory: Inventory) -> dict[str, list[IpEntry]]:
    found: dict[str, list[IpEntry]] = defaultdict(list)
    for node in inventory.nodes:
        for ip in node.addresses:
            found[ip].append(IpEntry(ip=ip, kind="host", node=node.name))
    for pod in inventory.pods:
        if not is_live(pod):
            continue
        if pod.host_ip:
            found[pod.host_ip].append(IpEntry(ip=pod.host_ip, kind="host", node=pod.node))
        if pod.host_network:
            continue  # shares the node IP: that IP is the host
        for ip in pod.ips:
            found[ip].append(_pod_entry(ip, pod))
    for svc in inventory.services:
        kind = "cluster_infra" if (svc.namespace, svc.name) == APISERVER else "service"
        for ip in svc.cluster_ips:
            if ip and ip != "None":
                found[ip].append(
                    IpEntry(
                        ip=ip,
                        kind=kind,
                        service_namespace=svc.namespace,
                        service_name=svc.name,
                        detail="kube-apiserver" if kind == "cluster_infra" else None,
                    )
                )
    for eps in inventory.endpoint_slices:
        if (eps.namespace, eps.service) == APISERVER:
            for endpoint in eps.endpoints:
                for ip in endpoint.addresses:
                    found[ip].append(IpEntry(ip=ip, kind="cluster_infra", detail="kube-apiserver"))
    return found


def _pick(ip: str, entries: list[IpEntry]) -> IpEntry:
    best = min(_PRIORITY[e.kind] for e in entries)
    top = [e for e in entries if _PRIORITY[e.kind] == best]
    if best == _PRIORITY["pod"] and len({(e.namespace, e.pod) for e in top}) > 1:
        return IpEntry(ip=ip, kind="unknown", detail="ambiguous-ip")
    if best == _PRIORITY["host"]:
        named = sorted(e.node for e in top if e.node)
        return IpEntry(ip=ip, kind="host", node=named[0] if named else None)
    return top[0]


def build_ip_index(inventory: Inventory) -> list[IpEntry]:
    """One entry per known IP, sorted by IP.

    >>> from recommender.model import Pod, Node
    >>> inv = Inventory(pods=(Pod("shop", "web-1", {"app": "web"}, ips=("10.0.0.5",),
    ...                           host_ip="192.168.1.2", node="n1"),), nodes=(Node("n1"),))
    >>> [(e.ip, e.kind, e.pod or e.node) for e in build_ip_index(inv)]
    [('10.0.0.5', 'pod', 'web-1'), ('192.168.1.2', 'host', 'n1')]
    """
    return [_pick(ip, entries) for ip, entries in sorted(_candidates(inventory).items())]


def build_pod_index(inventory: Inventory) -> list[IpEntry]:
    """Live non-hostNetwork pods by ``(namespace, pod)``, for Hubble endpoints with a name."""
    rows = {}
    for pod in inventory.pods:
        if is_live(pod) and not pod.host_network:
            rows[(pod.namespace, pod.name)] = _pod_entry(pod.ips[0] if pod.ips else "", pod)
    return [rows[k] for k in sorted(rows)]


def resolved_columns(side: str, by_ip: str, by_name: str) -> dict[str, str]:
    """SQL for one end (``src``/``dst``) after applying the inventory.

    ``by_ip``/``by_name`` are the joined index rows (alias). Hubble's labelled pod
    identity wins over the snapshot (it was true at event time); otherwise a known
    IP replaces a ``host``/``world``/``unknown``/label-less endpoint, the
    kube-apiserver replaces anything but a labelled pod, and a pod named by
    Hubble gets its labels and owner from the inventory.
    """
    s = side
    labelled = f"({s}_kind = 'pod' AND coalesce({s}_labels, '{{}}') <> '{{}}')"
    named = f"({by_name}.pod IS NOT NULL)"
    mark = f"chr(31) || '{UNATTRIBUTED_LABEL}' || chr(1)"
    marked = f"coalesce(contains({s}_j, {mark}), false)"
    use_ip = (
        f"({by_ip}.kind IS NOT NULL AND NOT {labelled} AND NOT ({s}_kind = 'pod' AND {named}) "
        f"AND NOT {marked} "
        f"AND ({by_ip}.kind = 'cluster_infra' OR {s}_kind IN ('host', 'world', 'unknown', 'pod')))"
    )
    # A template filled per field with str.replace: the SQL holds literal braces ('{}').
    pick = (
        f"CASE WHEN {use_ip} THEN {by_ip}.@F WHEN {s}_kind = 'pod' AND {named} "
        f"THEN {by_name}.@F END"
    )
    cols = {
        "kind": f"CASE WHEN {use_ip} THEN {by_ip}.kind ELSE {s}_kind END",
        "detail": f"CASE WHEN {marked} THEN regexp_extract({s}_j, {mark} || '([^' || chr(31) "
        f"|| ']*)', 1) WHEN {use_ip} THEN {by_ip}.detail WHEN {s}_kind = 'unknown' AND "
        f"{by_ip}.kind IS NULL THEN 'not-in-inventory' ELSE {s}_detail END",
    }
    for field in (
        "namespace",
        "pod",
        "service_account",
        "node",
        "service_namespace",
        "service_name",
    ):
        cols[field] = f"coalesce({pick.replace('@F', field)}, {s}_{field})"
    cols["labels"] = (
        f"CASE WHEN {labelled} THEN {s}_labels ELSE "
        f"coalesce({pick.replace('@F', 'labels')}, {s}_labels) END"
    )
    # The raw Hubble label string stays only while Hubble's labels are kept.
    cols["j"] = f"CASE WHEN {labelled} OR {pick.replace('@F', 'labels')} IS NULL THEN {s}_j END"
    for field in ("workload_kind", "workload_name"):
        fill = (
            f"coalesce({by_name}.{field}, CASE WHEN {by_ip}.kind = 'pod' THEN {by_ip}.{field} END)"
        )
        cols[field] = f"coalesce({s}_{field}, CASE WHEN {use_ip} THEN {by_ip}.{field} END, {fill})"
    return cols


def resolved_sql(relation: str, sides: tuple[str, ...], ip_index: str, pod_index: str) -> str:
    """``relation`` with the ends ``sides`` (column prefixes) resolved against the inventory.

    ``ip_index``/``pod_index`` name relations of :func:`build_ip_index` and
    :func:`build_pod_index` rows.
    """
    replace, joins = [], []
    for n, side in enumerate(sides):
        ip_alias, name_alias = f"inv_ip_{n}", f"inv_pod_{n}"
        cols = resolved_columns(side, ip_alias, name_alias)
        replace += [f"{cols[f]} AS {side}_{f}" for f in RESOLVED_FIELDS]
        joins.append(
            f"LEFT JOIN {ip_index} {ip_alias} ON {ip_alias}.ip = r.{side}_ip "
            f"LEFT JOIN {pod_index} {name_alias} ON {name_alias}.namespace = r.{side}_namespace "
            f"AND {name_alias}.pod = r.{side}_pod"
        )
    return f"SELECT r.* REPLACE ({', '.join(replace)}) FROM ({relation}) r {' '.join(joins)}"
