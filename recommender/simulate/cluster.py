"""Materialise a topology into nodes and pods, before and after a rollout.

Everything is drawn from one seeded ``random.Random``, in a fixed order, so a
seed gives the same names, IPs, hashes, endpoint ids and identities.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from recommender.simulate.topology import Topology, WorkloadSpec

#: Alphabet Kubernetes uses for generated name suffixes and hashes (rand.SafeEncodeString).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NS_PER_S = 1_000_000_000

#: Label key prefixes Cilium's default identity filter excludes (matched at the
#: start of the key; ``beta.kubernetes.io`` anywhere). ``app.kubernetes.io`` is
#: explicitly included. Source: Cilium pkg/labelsfilter defaults, FORMATS.md 2.1.4.
_CILIUM_EXCLUDED = (
    "io.kubernetes",
    "kubernetes.io",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
    "batch.kubernetes.io/job-completion-index",
    "batch.kubernetes.io/controller-uid",
    "k8s.io",
    "pod-template-generation",
    "pod-template-hash",
    "controller-revision-hash",
    "controller-uid",
    "annotation",
    "etcd_node",
    "topology.kubernetes.io",
)


def is_identity_label(key: str) -> bool:
    """True when Cilium's default label filter keeps ``key`` in the identity.

    >>> [is_identity_label(k) for k in ("app", "pod-template-hash", "job-name",
    ...  "batch.kubernetes.io/job-name", "batch.kubernetes.io/controller-uid")]
    [True, False, True, True, False]
    """
    if key.startswith("app.kubernetes.io"):
        return True
    return not key.startswith(_CILIUM_EXCLUDED) and "beta.kubernetes.io" not in key


@dataclass(frozen=True)
class NodeState:
    index: int
    name: str
    ip: str
    pod_cidr: str
    router_ip: str
    control_plane: bool
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass
class PodState:
    """One pod: where it runs, what it is called, which labels and identity it has."""

    spec: WorkloadSpec
    name: str
    node: NodeState
    ip: str
    labels: dict[str, str]
    owner_kind: str
    owner_name: str
    uid: str
    mac: str
    endpoint_id: int
    ifindex: int
    created_ns: int
    generation: str  # "train" or "fresh"
    finished_ns: int | None = None  # Job/CronJob run end
    identity: int = 0
    hubble_labels: tuple[str, ...] = ()

    @property
    def namespace(self) -> str:
        return self.spec.namespace

    @property
    def iface(self) -> str:
        """The pod's host-side veth (``lxc`` + 12 hex characters)."""
        return "lxc" + self.mac.replace(":", "")[:12]


@dataclass
class ClusterState:
    """Nodes, pods of both generations, CronJob runs, hashes and Service IPs."""

    nodes: list[NodeState]
    pods: dict[str, dict[str, list[PodState]]]  # generation -> workload key -> pods
    runs: dict[str, list[PodState]]  # CronJob/Job key -> run pods, in time order
    hashes: dict[str, tuple[str, str]]  # workload key -> (train hash, fresh hash)
    service_ips: dict[str, str]
    namespace_labels: dict[str, dict[str, str]]
    apiserver_ip: str
    identities: dict[tuple[str, ...], int] = field(default_factory=dict)
    epoch_ns: int | None = None

    @property
    def workers(self) -> list[NodeState]:
        return [n for n in self.nodes if not n.control_plane]


def random_suffix(rng: random.Random, n: int) -> str:
    """``n`` characters of the Kubernetes safe alphabet."""
    return "".join(rng.choice(SAFE_ALPHABET) for _ in range(n))


def random_uid(rng: random.Random) -> str:
    """A version-4 UUID string from ``rng``."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def random_mac(rng: random.Random) -> str:
    """A locally administered unicast MAC."""
    b = [rng.getrandbits(8) for _ in range(6)]
    b[0] = (b[0] | 2) & 0xFE
    return ":".join(f"{x:02x}" for x in b)


class _Allocator:
    """Hands out pod IPs per node, endpoint ids per node, identities per label set."""

    def __init__(self, nodes: list[NodeState], rng: random.Random) -> None:
        self.rng = rng
        self.next_host = {n.index: 2 for n in nodes}
        self.networks: dict[int, ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
        self.endpoint_ids: dict[int, set[int]] = {n.index: set() for n in nodes}
        self.identities: dict[tuple[str, ...], int] = {}
        self.used_identities: set[int] = set()

    def pod_ip(self, node: NodeState) -> str:
        net = self.networks.get(node.index)
        if net is None:
            net = self.networks[node.index] = ipaddress.ip_network(node.pod_cidr)
        host = self.next_host[node.index]
        if host >= net.num_addresses - 1:
            raise ValueError(f"pod CIDR {node.pod_cidr} of {node.name} is exhausted")
        self.next_host[node.index] = host + 1
        return str(net.network_address + host)

    def endpoint_id(self, node: NodeState) -> int:
        used = self.endpoint_ids[node.index]
        while True:
            value = self.rng.randint(1, 4095)
            if value not in used:
                used.add(value)
                return value

    def identity(self, labels: tuple[str, ...]) -> int:
        if labels not in self.identities:
            while True:
                value = self.rng.randint(1000, 65000)
                if value not in self.used_identities:
                    break
            self.used_identities.add(value)
            self.identities[labels] = value
        return self.identities[labels]


def build_nodes(topology: Topology) -> list[NodeState]:
    """kind-style nodes: ``<cluster>-control-plane``, ``<cluster>-worker``, ``-worker2`` ..."""
    c = topology.cluster
    node_net = ipaddress.ip_network(c.node_cidr)
    network = ipaddress.ip_network(c.pod_cidr)
    size = 1 << (network.max_prefixlen - c.node_prefix)
    if (c.workers + 1) * size > network.num_addresses:
        raise ValueError(f"pod CIDR {c.pod_cidr} has no room for {c.workers + 1} nodes")
    nodes = []
    for i in range(c.workers + 1):
        name = f"{c.name}-control-plane" if i == 0 else f"{c.name}-worker{'' if i == 1 else i}"
        pod_cidr = ipaddress.ip_network((int(network.network_address) + i * size, c.node_prefix))
        labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
        }
        if i == 0:
            labels["node-role.kubernetes.io/control-plane"] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        nodes.append(
            NodeState(
                i,
                name,
                str(node_net.network_address + 2 + i),
                str(pod_cidr),
                str(pod_cidr.network_address + 1),
                i == 0,
                labels,
            )
        )
    return nodes


def hubble_labels(pod: PodState, cluster: str, ns_labels: Mapping[str, str]) -> tuple[str, ...]:
    """The identity labels Hubble prints: filtered pod labels plus Cilium's pseudo labels."""
    items = [f"k8s:{k}={v}" for k, v in pod.labels.items() if is_identity_label(k)]
    items += [f"k8s:io.cilium.k8s.namespace.labels.{k}={v}" for k, v in ns_labels.items()]
    items += [
        f"k8s:io.cilium.k8s.policy.cluster={cluster}",
        f"k8s:io.cilium.k8s.policy.serviceaccount={pod.spec.service_account}",
        f"k8s:io.kubernetes.pod.namespace={pod.namespace}",
    ]
    return tuple(sorted(items))


@dataclass(frozen=True)
class Windows:
    """Simulation time line in ns since the epoch: train, rollout, fresh."""

    train_start: int
    rollout: int
    fresh_end: int


def build_cluster(topology: Topology, seed: int, windows: Windows) -> ClusterState:
    """Place every pod of both generations and every Job run; allocate IPs and identities."""
    rng = random.Random(f"{seed}:cluster")
    nodes = build_nodes(topology)
    alloc = _Allocator(nodes, rng)
    ns_labels = {
        n.name: {**n.labels, "kubernetes.io/metadata.name": n.name} for n in topology.namespaces
    }
    for name in ("default", "kube-system"):
        ns_labels.setdefault(name, {"kubernetes.io/metadata.name": name})
    workers = [n for n in nodes if not n.control_plane]
    pods: dict[str, dict[str, list[PodState]]] = {"train": {}, "fresh": {}}
    hashes: dict[str, tuple[str, str]] = {}
    for w in topology.workloads:
        if w.kind in ("CronJob", "Job"):
            continue
        train = _template_pods(w, "train", workers, alloc, rng, windows)
        fresh = _template_pods(w, "fresh", workers, alloc, rng, windows) if w.rollout else train
        pods["train"][w.key], pods["fresh"][w.key] = train, fresh
        hashes[w.key] = (_template_hash(train[0]), _template_hash(fresh[0]))
    runs = {
        w.key: _job_runs(w, workers, alloc, rng, windows)
        for w in topology.workloads
        if w.kind in ("CronJob", "Job")
    }
    state = ClusterState(nodes, pods, runs, hashes, _service_ips(topology), ns_labels, nodes[0].ip)
    for pod in all_pods(state):
        pod.hubble_labels = hubble_labels(pod, topology.cluster.name, ns_labels[pod.namespace])
        pod.identity = alloc.identity(pod.hubble_labels)
    state.identities = alloc.identities
    return state


def all_pods(state: ClusterState) -> list[PodState]:
    """Every distinct pod, in a fixed order."""
    seen: dict[int, PodState] = {}
    for generation in ("train", "fresh"):
        for group in state.pods[generation].values():
            for pod in group:
                seen.setdefault(id(pod), pod)
    for group in state.runs.values():
        for pod in group:
            seen.setdefault(id(pod), pod)
    return list(seen.values())


def _template_hash(pod: PodState) -> str:
    return pod.labels.get("pod-template-hash") or pod.labels.get("controller-revision-hash", "")


def _created(generation: str, rng: random.Random, windows: Windows) -> int:
    if generation == "train":
        return windows.train_start - rng.randint(3600, 20 * 86400) * NS_PER_S
    return windows.rollout - rng.randint(10, 300) * NS_PER_S


def _new_pod(
    w: WorkloadSpec,
    name: str,
    node: NodeState,
    labels: dict[str, str],
    owner: tuple[str, str],
    alloc: _Allocator,
    created: int,
    generation: str,
) -> PodState:
    rng = alloc.rng
    return PodState(
        spec=w,
        name=name,
        node=node,
        ip=alloc.pod_ip(node),
        labels=labels,
        owner_kind=owner[0],
        owner_name=owner[1],
        uid=random_uid(rng),
        mac=random_mac(rng),
        endpoint_id=alloc.endpoint_id(node),
        ifindex=rng.randint(8, 400),
        created_ns=created,
        generation=generation,
    )


def _template_pods(
    w: WorkloadSpec,
    generation: str,
    workers: list[NodeState],
    alloc: _Allocator,
    rng: random.Random,
    windows: Windows,
) -> list[PodState]:
    """Pods of a Deployment, StatefulSet or DaemonSet for one generation."""
    h = random_suffix(rng, 10)
    out = []
    if w.kind == "DaemonSet":
        labels = {
            **w.labels,
            "controller-revision-hash": h,
            "pod-template-generation": "1" if generation == "train" else "2",
        }
        for node in workers:
            out.append(
                _new_pod(
                    w,
                    f"{w.name}-{random_suffix(rng, 5)}",
                    node,
                    dict(labels),
                    ("DaemonSet", w.name),
                    alloc,
                    _created(generation, rng, windows),
                    generation,
                )
            )
        return out
    for i in range(w.replicas):
        node = rng.choice(workers)
        if w.kind == "StatefulSet":
            name = f"{w.name}-{i}"
            labels = {
                **w.labels,
                "apps.kubernetes.io/pod-index": str(i),
                "controller-revision-hash": f"{w.name}-{h}",
                "statefulset.kubernetes.io/pod-name": name,
            }
            owner = ("StatefulSet", w.name)
        else:
            name = f"{w.name}-{h}-{random_suffix(rng, 5)}"
            labels = {**w.labels, "pod-template-hash": h}
            owner = ("ReplicaSet", f"{w.name}-{h}")
        out.append(
            _new_pod(
                w, name, node, labels, owner, alloc, _created(generation, rng, windows), generation
            )
        )
    return out


def _run_times(w: WorkloadSpec, rng: random.Random, windows: Windows) -> list[int]:
    if w.kind == "Job" or w.schedule_hours is None:
        train_len = windows.rollout - windows.train_start
        fresh_len = windows.fresh_end - windows.rollout
        return [
            windows.train_start + int(rng.random() * train_len * 0.9),
            windows.rollout + int(rng.random() * fresh_len * 0.9),
        ]
    period = int(w.schedule_hours * 3600) * NS_PER_S
    offset = rng.randint(0, 59) * 60 * NS_PER_S % period
    first = (windows.train_start - 3 * period) // period * period + offset
    return [
        t for t in range(first, windows.fresh_end, period) if t >= windows.train_start - 3 * period
    ]


def _job_runs(
    w: WorkloadSpec,
    workers: list[NodeState],
    alloc: _Allocator,
    rng: random.Random,
    windows: Windows,
) -> list[PodState]:
    """One pod per Job run; CronJob Jobs are named ``<cronjob>-<unix minutes>``."""
    out = []
    for t in _run_times(w, rng, windows):
        job = f"{w.name}-{t // (60 * NS_PER_S)}" if w.kind == "CronJob" else w.name
        uid = random_uid(rng)
        labels = {
            **w.labels,
            "batch.kubernetes.io/controller-uid": uid,
            "batch.kubernetes.io/job-name": job,
            "controller-uid": uid,
            "job-name": job,
        }
        generation = "train" if t < windows.rollout else "fresh"
        pod = _new_pod(
            w,
            f"{job}-{random_suffix(rng, 5)}",
            rng.choice(workers),
            labels,
            ("Job", job),
            alloc,
            t,
            generation,
        )
        pod.finished_ns = t + int(w.run_minutes * 60 * NS_PER_S)
        out.append(pod)
    return out


def _service_ips(topology: Topology) -> dict[str, str]:
    net = ipaddress.ip_network(topology.cluster.service_cidr)
    ips = {
        "default/kubernetes": str(net.network_address + 1),
        "kube-system/kube-dns": str(net.network_address + 10),
    }
    for i, s in enumerate(topology.services):
        key = f"{s.namespace}/{s.name}"
        ips.setdefault(key, "None" if s.headless else str(net.network_address + 100 + 3 * i))
    return ips
