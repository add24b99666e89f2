"""Declarative topologies: what an app is made of and who may talk to whom.

A topology is a small YAML document (schema in ``README.md`` beside this file)
with namespaces, workloads, Services, external destinations and the legitimate
edges with their rates. :func:`load_topology` reads one by name (a file in
``topologies/``), by path, or builds the generated ``large`` topology
(``large:2000``). Parsing expands ``matrix`` templates and adds the implicit
edges every cluster has (DNS, kubelet probes, Prometheus scrapes), so the
returned :class:`Topology` lists every legitimate edge in a fixed order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from recommender.errors import InputError
from recommender.simulate.expand import expand_document

TOPOLOGY_DIR = Path(__file__).resolve().parent / "topologies"
WORKLOAD_KINDS: tuple[str, ...] = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")
#: Special edge endpoints besides ``namespace/name`` workloads.
SPECIAL_PEERS: tuple[str, ...] = ("internet", "host", "apiserver")
DNS_WORKLOAD = "kube-system/coredns"


@dataclass(frozen=True)
class PortSpec:
    """A container port."""

    port: int
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class NamespaceSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class WorkloadSpec:
    """A Deployment, StatefulSet, DaemonSet, Job or CronJob.

    ``schedule_hours`` is the CronJob period (runs at whole multiples of it);
    ``probe_port`` the port kubelet probes (None = no probe).
    """

    namespace: str
    name: str
    kind: str
    replicas: int
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    service_account: str = "default"
    ports: tuple[PortSpec, ...] = ()
    probe_port: int | None = None
    dns: bool = True
    schedule_hours: float | None = None
    run_minutes: float = 5.0
    rollout: bool = True

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    @property
    def workload(self) -> str:
        """``<kind-lowercase>/<name>`` as in the truth file."""
        return f"{self.kind.lower()}/{self.name}"

    def resolve_port(self, port: int | str) -> PortSpec:
        """The declared port by number or name; KeyError when undeclared."""
        for spec in self.ports:
            if port in (spec.port, spec.name):
                return spec
        raise KeyError(port)


@dataclass(frozen=True)
class ServicePortSpec:
    port: int
    target_port: int | str
    name: str | None = None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ServiceSpec:
    namespace: str
    name: str
    selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    ports: tuple[ServicePortSpec, ...] = ()
    headless: bool = False
    cluster_ip: str | None = None


@dataclass(frozen=True)
class ExternalSpec:
    """An external destination: one or more IPs, its DNS names, its provider range."""

    name: str
    ips: tuple[str, ...]
    names: tuple[str, ...] = ()
    cidr: str | None = None


@dataclass(frozen=True)
class EdgeSpec:
    """One legitimate communication, ``src`` -> ``dst`` on a port.

    ``src``/``dst`` are ``namespace/name`` workloads, ``world:<external>``,
    ``internet`` (any public client), ``host`` (kubelet) or ``apiserver``.
    ``rate`` is connections per hour over the whole workload (CronJob edges:
    ``per_run`` connections per run instead).
    """

    src: str
    dst: str
    port: int
    protocol: str
    rate: float
    category: str = "app"
    fresh_only: bool = False
    per_run: int = 0


@dataclass(frozen=True)
class AttackSpec:
    """Illegitimate traffic: ``scan``, ``lateral`` or ``exfiltration``.

    ``count`` connections per window; ``dropped_share`` of them arrive DROPPED.
    """

    kind: str
    src: str
    count: int
    dropped_share: float
    dst: str | None = None
    port: int | None = None
    ports: tuple[int, ...] = ()
    burst_minutes: float = 30.0


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    workers: int
    pod_cidr: str = "10.244.0.0/16"
    node_cidr: str = "172.18.0.0/16"
    service_cidr: str = "10.96.0.0/12"
    node_prefix: int = 24


@dataclass(frozen=True)
class Topology:
    name: str
    cluster: ClusterSpec
    namespaces: tuple[NamespaceSpec, ...]
    workloads: tuple[WorkloadSpec, ...]
    services: tuple[ServiceSpec, ...]
    externals: tuple[ExternalSpec, ...]
    edges: tuple[EdgeSpec, ...]
    attacks: tuple[AttackSpec, ...] = ()

    def workload(self, key: str) -> WorkloadSpec:
        """Look a workload up by ``namespace/name``."""
        index: dict[str, WorkloadSpec] | None = self.__dict__.get("_index")
        if index is None:
            index = {w.key: w for w in self.workloads}
            object.__setattr__(self, "_index", index)
        return index[key]

    def external(self, name: str) -> ExternalSpec:
        for e in self.externals:
            if e.name == name:
                return e
        raise KeyError(name)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def available_topologies() -> list[str]:
    """Names of the bundled topologies."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.yaml"))


def load_topology(ref: str, size: int | None = None) -> Topology:
    """Load a topology by bundled name, ``name:size`` or YAML path.

    Parameters
    ----------
    ref
        ``webshop``, ``saas``, ``large``, ``large:2000`` or a path to a YAML file.
    size
        Size parameter of generated topologies (``large``); overrides ``:size``.

    Raises
    ------
    InputError
        Unknown name, unreadable file, or an invalid document.
    """
    name, _, size_text = ref.partition(":")
    path = Path(ref)
    if not path.suffix:
        path = TOPOLOGY_DIR / f"{name}.yaml"
        if size_text:
            if not size_text.isdigit() or int(size_text) < 1:
                raise InputError(ref, "size after ':' must be a positive integer")
            size = size if size is not None else int(size_text)
    if not path.is_file():
        known = ", ".join(available_topologies())
        raise InputError(ref, "no such topology", hint=f"bundled: {known}; or give a YAML path")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(str(path), f"cannot read topology: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputError(str(path), "a topology must be a YAML mapping")
    if doc.get("generator") == "large":
        from recommender.simulate.large import build_large_document

        doc = build_large_document(doc, size)
    return parse_topology(doc, str(path))


def parse_topology(doc: Mapping[str, Any], source: str = "<topology>") -> Topology:
    """Validate a topology document and add the implicit edges."""
    try:
        return _parse(expand_document(doc))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"invalid topology: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"unknown or missing {exc.args[0]!r}"
    return str(exc)


def _parse(doc: Mapping[str, Any]) -> Topology:
    c = doc["cluster"]
    cluster = ClusterSpec(
        name=str(c.get("name", doc["name"])),
        workers=int(c["workers"]),
        pod_cidr=str(c.get("pod_cidr", "10.244.0.0/16")),
        node_cidr=str(c.get("node_cidr", "172.18.0.0/16")),
        service_cidr=str(c.get("service_cidr", "10.96.0.0/12")),
        node_prefix=int(c.get("node_prefix", 24)),
    )
    namespaces = [
        NamespaceSpec(str(n), _labels(v.get("labels") if v else None))
        for n, v in (doc.get("namespaces") or {}).items()
    ]
    workloads = [_workload(w) for w in doc.get("workloads") or []]
    workloads = _with_coredns(workloads)
    services = [_service(s) for s in doc.get("services") or []]
    externals = [
        ExternalSpec(
            str(n),
            tuple(str(i) for i in v["ips"]),
            tuple(str(x) for x in v.get("names") or ()),
            v.get("cidr"),
        )
        for n, v in (doc.get("externals") or {}).items()
    ]
    by_key = {w.key: w for w in workloads}
    if len(by_key) != len(workloads):
        raise ValueError("duplicate workload namespace/name")
    ns_names = {n.name for n in namespaces} | {"kube-system", "default"}
    for w in workloads:
        if w.namespace not in ns_names:
            raise ValueError(f"workload {w.key}: namespace {w.namespace!r} not declared")
    ext_names = {e.name for e in externals}
    edges = [_edge(e, by_key, ext_names) for e in doc.get("edges") or []]
    edges += _implicit_edges(doc, workloads, edges)
    attacks = [_attack(a, by_key) for a in doc.get("attacks") or []]
    return Topology(
        str(doc["name"]),
        cluster,
        tuple(namespaces),
        tuple(workloads),
        tuple(services),
        tuple(externals),
        tuple(edges),
        tuple(attacks),
    )


def _labels(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError("labels must be a mapping")
    return {str(k): str(v) for k, v in value.items()}


def _port(p: Mapping[str, Any]) -> PortSpec:
    return PortSpec(int(p["port"]), p.get("name"), str(p.get("protocol", "TCP")))


def _workload(w: Mapping[str, Any]) -> WorkloadSpec:
    kind = str(w.get("kind", "Deployment"))
    if kind not in WORKLOAD_KINDS:
        raise ValueError(f"workload kind {kind!r} not one of {', '.join(WORKLOAD_KINDS)}")
    ports = tuple(_port(p) for p in w.get("ports") or ())
    spec = WorkloadSpec(
        namespace=str(w["namespace"]),
        name=str(w["name"]),
        kind=kind,
        replicas=int(w.get("replicas", 1)),
        labels=_labels(w.get("labels")),
        service_account=str(w.get("service_account", "default")),
        ports=ports,
        dns=bool(w.get("dns", True)),
        schedule_hours=float(w["schedule_hours"]) if "schedule_hours" in w else None,
        run_minutes=float(w.get("run_minutes", 5.0)),
        rollout=bool(w.get("rollout", True)),
    )
    if kind == "CronJob" and spec.schedule_hours is None:
        raise ValueError(f"CronJob {spec.key} needs schedule_hours")
    if "probe" in w:
        spec = replace(spec, probe_port=spec.resolve_port(w["probe"]).port)
    return spec


def _with_coredns(workloads: list[WorkloadSpec]) -> list[WorkloadSpec]:
    """Every cluster runs CoreDNS (``k8s-app: kube-dns``) in kube-system."""
    if any(w.key == DNS_WORKLOAD for w in workloads):
        return workloads
    coredns = WorkloadSpec(
        namespace="kube-system",
        name="coredns",
        kind="Deployment",
        replicas=2,
        labels={"k8s-app": "kube-dns"},
        service_account="coredns",
        ports=(
            PortSpec(53, "dns", "UDP"),
            PortSpec(53, "dns-tcp", "TCP"),
            PortSpec(9153, "metrics", "TCP"),
        ),
        probe_port=None,
        dns=False,
        rollout=False,
    )
    return [coredns, *workloads]


def _service(s: Mapping[str, Any]) -> ServiceSpec:
    ports = tuple(
        ServicePortSpec(
            int(p["port"]),
            p.get("target_port", p["port"]),
            p.get("name"),
            str(p.get("protocol", "TCP")),
        )
        for p in s["ports"]
    )
    return ServiceSpec(
        str(s["namespace"]),
        str(s["name"]),
        _labels(s["selector"]),
        ports,
        bool(s.get("headless", False)),
    )


def _check_peer(peer: str, by_key: Mapping[str, WorkloadSpec], externals: set[str]) -> None:
    if peer in SPECIAL_PEERS or peer in by_key:
        return
    if peer.startswith("world:") and peer[6:] in externals:
        return
    raise ValueError(f"edge peer {peer!r} is not a workload, external or special peer")


def _edge(
    e: Mapping[str, Any], by_key: Mapping[str, WorkloadSpec], externals: set[str]
) -> EdgeSpec:
    src, dst = str(e["from"]), str(e["to"])
    _check_peer(src, by_key, externals)
    _check_peer(dst, by_key, externals)
    port, protocol = e["port"], str(e.get("protocol", "TCP"))
    if dst in by_key:
        resolved = by_key[dst].resolve_port(port)
        port, protocol = resolved.port, resolved.protocol
    elif dst == "apiserver":
        port = int(port)
    source = by_key.get(src)
    per_run = int(e.get("per_run", 0))
    if source is not None and source.kind == "CronJob":
        if per_run < 1:
            raise ValueError(f"edge from CronJob {src} needs per_run >= 1")
        rate = per_run / float(source.schedule_hours or 1.0)
    else:
        rate = float(e["rate"])
    return EdgeSpec(
        src,
        dst,
        int(port),
        protocol,
        rate,
        str(e.get("category", "app")),
        bool(e.get("fresh_only", False)),
        per_run,
    )


def _implicit_edges(
    doc: Mapping[str, Any], workloads: list[WorkloadSpec], edges: list[EdgeSpec]
) -> list[EdgeSpec]:
    """DNS to kube-dns (UDP and TCP 53), kubelet probes, Prometheus scrapes."""
    out: list[EdgeSpec] = []
    scrape = doc.get("scrape") or {}
    probe_rate = float(doc.get("probe_rate_per_pod", 60.0))
    egress: dict[str, float] = {}
    for e in edges:
        egress[e.src] = egress.get(e.src, 0.0) + e.rate
    for w in workloads:
        cron = w.kind == "CronJob"
        if w.dns:
            own = egress.get(w.key, 0.0)
            udp = max(2.0, round(own * 0.4, 3))
            out.append(
                EdgeSpec(
                    w.key,
                    DNS_WORKLOAD,
                    53,
                    "UDP",
                    udp if not cron else 2 / float(w.schedule_hours or 1),
                    "dns",
                    per_run=2 if cron else 0,
                )
            )
            out.append(
                EdgeSpec(
                    w.key,
                    DNS_WORKLOAD,
                    53,
                    "TCP",
                    max(0.5, round(udp * 0.03, 3))
                    if not cron
                    else 1 / float(w.schedule_hours or 1),
                    "dns",
                    per_run=1 if cron else 0,
                )
            )
        if w.probe_port is not None and not cron:
            out.append(
                EdgeSpec(
                    "host", w.key, w.probe_port, "TCP", probe_rate * _pod_count(w, doc), "probe"
                )
            )
    if scrape:
        out += _scrape_edges(scrape, workloads, doc)
    return out


def _pod_count(w: WorkloadSpec, doc: Mapping[str, Any]) -> int:
    if w.kind == "DaemonSet":
        return int(doc["cluster"]["workers"])
    return w.replicas


def _scrape_edges(
    scrape: Mapping[str, Any], workloads: list[WorkloadSpec], doc: Mapping[str, Any]
) -> list[EdgeSpec]:
    """Prometheus scrapes every pod exposing the metrics port name: fan-out, not a scan."""
    src, port_name = str(scrape["from"]), str(scrape.get("port_name", "metrics"))
    per_pod = float(scrape.get("rate_per_pod", 120.0))
    out = []
    for w in workloads:
        if w.key == src or w.kind == "CronJob":
            continue
        for p in w.ports:
            if p.name == port_name:
                out.append(
                    EdgeSpec(src, w.key, p.port, p.protocol, per_pod * _pod_count(w, doc), "scrape")
                )
    return out


def _attack(a: Mapping[str, Any], by_key: Mapping[str, WorkloadSpec]) -> AttackSpec:
    kind = str(a["kind"])
    if kind not in ("scan", "lateral", "exfiltration"):
        raise ValueError(f"attack kind {kind!r} not scan, lateral or exfiltration")
    src = str(a["from"])
    if src not in by_key:
        raise ValueError(f"attack source {src!r} is not a workload")
    dst = a.get("to")
    port = a.get("port")
    if dst is not None and dst in by_key and port is not None:
        port = by_key[dst].resolve_port(port).port
    return AttackSpec(
        kind,
        src,
        int(a.get("count", 20)),
        float(a.get("dropped_share", 0.5)),
        dst,
        int(port) if port is not None else None,
        tuple(int(p) for p in a.get("ports") or ()),
        float(a.get("burst_minutes", 30.0)),
    )
