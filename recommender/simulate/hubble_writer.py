"""Hubble jsonpb lines, as ``hubble observe -o jsonpb`` prints them (Cilium 1.20).

Lines are assembled from pre-serialised fragments (endpoints, node labels) in
the key order protojson uses (flow.proto declaration order), with protojson's
conventions: zero values omitted, enums by name, ``is_reply`` a BoolValue that
is absent when unknown, the deprecated ``reply`` only when true.

Direction follows Cilium's ``decodeTrafficDirection``: trace events are EGRESS
when (the event's endpoint is the packet source) != is_reply, so a request
arriving at the server is INGRESS and its reply arriving back at the client is
EGRESS; policy-verdict events (type 5) carry the direction of the check.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass

from recommender.simulate.cluster import NS_PER_S, NodeState, PodState

EMITTER = '"emitter":{"name":"Hubble","version":"1.20.1+g7d68cfb3"}'
WORLD = '{"identity":2,"labels":["reserved:world"]}'
HOST = '{"identity":1,"labels":["reserved:host"]}'
REMOTE_NODE = '{"identity":6,"labels":["reserved:remote-node"]}'
APISERVER = '{"identity":7,"labels":["reserved:kube-apiserver","reserved:remote-node"]}'

#: TCP flag sets: (l4 flags JSON, Summary). Hubble lists flags SYN, ACK, RST, FIN, PSH.
FLAGS = {
    "SYN": ('{"SYN":true}', "TCP Flags: SYN"),
    "SYNACK": ('{"SYN":true,"ACK":true}', "TCP Flags: SYN, ACK"),
    "ACKPSH": ('{"PSH":true,"ACK":true}', "TCP Flags: ACK, PSH"),
    "RSTACK": ('{"RST":true,"ACK":true}', "TCP Flags: ACK, RST"),
}
#: Trace observation points and their event sub_type (monitor/api Trace* constants).
TRACE_SUBTYPE = {"TO_ENDPOINT": 0, "TO_STACK": 3, "TO_OVERLAY": 4, "TO_NETWORK": 11}
REPLY_TRUE, REPLY_FALSE, REPLY_ABSENT = 1, 0, 2
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod, the node host, a world IP or the apiserver."""

    kind: str  # pod, host, world, apiserver
    ip: str
    node: NodeState | None = None
    pod: PodState | None = None


def q(text: str) -> str:
    """JSON string literal."""
    return json.dumps(text, ensure_ascii=False)


def workload_owner(pod: PodState) -> tuple[str, str]:
    """Hubble's ``workloads`` entry: the top owner (Deployment, not ReplicaSet)."""
    spec = pod.spec
    return spec.name, spec.kind


class LineWriter:
    """Builds Hubble flow lines; one instance per output file (it owns the RNG)."""

    def __init__(self, cluster: str, rng: random.Random, remote_workloads_share: float = 0.25):
        self.cluster = cluster
        self.rng = rng
        self.remote_workloads_share = remote_workloads_share
        self._frag: dict[tuple[int, int], str] = {}
        self._node: dict[int, tuple[str, str]] = {}
        self._sec = -1
        self._sec_text = ""
        self._uuid_hex = ""
        self._uuid_pos = 0

    # -- fragments ------------------------------------------------------------
    def endpoint(self, peer: Peer, observer: NodeState) -> str:
        """The ``source``/``destination`` object as seen from ``observer``."""
        if peer.kind == "pod":
            assert peer.pod is not None
            if peer.pod.node.index == observer.index:
                variant = 0
            else:
                variant = 1 if self.rng.random() < self.remote_workloads_share else 2
            return self._pod_fragment(peer.pod, variant)
        if peer.kind == "host":
            assert peer.node is not None
            return HOST if peer.node.index == observer.index else REMOTE_NODE
        return WORLD if peer.kind == "world" else APISERVER

    def _pod_fragment(self, pod: PodState, variant: int) -> str:
        key = (id(pod), variant)
        frag = self._frag.get(key)
        if frag is None:
            parts = [f'"ID":{pod.endpoint_id}'] if variant == 0 else []
            parts += [
                f'"identity":{pod.identity}',
                f'"cluster_name":{q(self.cluster)}',
                f'"namespace":{q(pod.namespace)}',
                '"labels":' + json.dumps(list(pod.hubble_labels), separators=(",", ":")),
                f'"pod_name":{q(pod.name)}',
            ]
            if variant in (0, 1):
                name, kind = workload_owner(pod)
                parts.append(f'"workloads":[{{"name":{q(name)},"kind":{q(kind)}}}]')
            frag = self._frag[key] = "{" + ",".join(parts) + "}"
        return frag

    def node_parts(self, node: NodeState) -> tuple[str, str]:
        """(quoted ``cluster/node`` name, node_labels JSON)."""
        parts = self._node.get(node.index)
        if parts is None:
            labels = [f"{k}={v}" for k, v in sorted(node.labels.items())]
            parts = (q(f"{self.cluster}/{node.name}"), json.dumps(labels, separators=(",", ":")))
            self._node[node.index] = parts
        return parts

    # -- scalars --------------------------------------------------------------
    def timestamp(self, t_ns: int) -> str:
        """RFC 3339 with nanoseconds, as protojson prints Timestamps."""
        sec, ns = divmod(t_ns, NS_PER_S)
        if sec != self._sec:
            self._sec = sec
            self._sec_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._sec_text}.{ns:09d}Z"

    def uuid(self) -> str:
        """A version-4 UUID; randomness drawn in blocks for speed."""
        if self._uuid_pos >= len(self._uuid_hex):
            self._uuid_hex = self.rng.randbytes(16 * 4096).hex()
            self._uuid_pos = 0
        i = self._uuid_pos
        self._uuid_pos = i + 32
        h = self._uuid_hex
        return (
            f"{h[i : i + 8]}-{h[i + 8 : i + 12]}-4{h[i + 13 : i + 16]}-"
            f"{_VARIANT[h[i + 16]]}{h[i + 17 : i + 20]}-{h[i + 20 : i + 32]}"
        )

    @staticmethod
    def mac(peer: Peer, observer: NodeState) -> str:
        """The pod's MAC; the observing node's gateway MAC for other peers."""
        if peer.pod is not None:
            return peer.pod.mac
        return f"02:00:{observer.index >> 8 & 255:02x}:{observer.index & 255:02x}:00:01"

    # -- lines ----------------------------------------------------------------
    def line(
        self,
        t_ns: int,
        observer: NodeState,
        src: Peer,
        dst: Peer,
        l4: str,
        summary: str,
        *,
        event: str,
        verdict: str = "FORWARDED",
        direction: str | None = None,
        match_type: int = 0,
        point: str | None = None,
        reason: str | None = None,
        is_reply: int = REPLY_FALSE,
        iface: str | None = None,
        names: str | None = None,
        drop: bool = False,
    ) -> str:
        """One ``{"flow":{...},"node_name":...,"time":...}`` line (without newline)."""
        ts = self.timestamp(t_ns)
        node, node_labels = self.node_parts(observer)
        opt_names = f'"destination_names":{names},' if names else ""
        opt_dir = f'"traffic_direction":"{direction}",' if direction else ""
        opt_match = f'"policy_match_type":{match_type},' if match_type else ""
        opt_point = f'"trace_observation_point":"{point}",' if point else ""
        opt_reason = f'"trace_reason":"{reason}",' if reason else ""
        opt_iface = f'"interface":{iface},' if iface else ""
        return (
            f'{{"flow":{{"time":"{ts}","uuid":"{self.uuid()}",{EMITTER},"verdict":"{verdict}",'
            f'{_DROP_REASON if drop else ""}"ethernet":{{"source":"{self.mac(src, observer)}",'
            f'"destination":"{self.mac(dst, observer)}"}},"IP":{{"source":"{src.ip}",'
            f'"destination":"{dst.ip}","ipVersion":"IPv4"}},"l4":{l4},'
            f'"source":{self.endpoint(src, observer)},'
            f'"destination":{self.endpoint(dst, observer)},"Type":"L3_L4","node_name":{node},'
            f'"node_labels":{node_labels},{opt_names}'
            f'{_REPLY_DEPRECATED if is_reply == REPLY_TRUE else ""}"event_type":{event},'
            f"{opt_dir}{opt_match}{opt_point}{opt_reason}{_DROP_DESC if drop else ''}"
            f"{_IS_REPLY[is_reply]}{opt_iface}"
            f'"Summary":"{summary}"}},"node_name":{node},"time":"{ts}"}}'
        )


_DROP_REASON = '"drop_reason":133,'
_DROP_DESC = '"drop_reason_desc":"POLICY_DENIED",'
_REPLY_DEPRECATED = '"reply":true,'
_IS_REPLY = {REPLY_TRUE: '"is_reply":true,', REPLY_FALSE: '"is_reply":false,', REPLY_ABSENT: ""}


def l4_json(protocol: str, sport: int, dport: int, flags: str = "SYN") -> tuple[str, str]:
    """(``l4`` JSON, Summary) for a TCP or UDP packet.

    >>> l4_json("UDP", 40000, 53)
    ('{"UDP":{"source_port":40000,"destination_port":53}}', 'UDP')
    """
    if protocol == "UDP":
        return f'{{"UDP":{{"source_port":{sport},"destination_port":{dport}}}}}', "UDP"
    flag_json, summary = FLAGS[flags]
    return (
        f'{{"TCP":{{"source_port":{sport},"destination_port":{dport},"flags":{flag_json}}}}}',
        summary,
    )


def trace_event(point: str) -> str:
    """``event_type`` of a trace notification (sub_type 0 is omitted)."""
    sub = TRACE_SUBTYPE[point]
    return '{"type":4}' if sub == 0 else f'{{"type":4,"sub_type":{sub}}}'


POLICY_VERDICT = '{"type":5}'
DROP_EVENT = '{"type":1,"sub_type":133}'


def iface_json(index: int, name: str) -> str:
    """``interface`` object; interface names are plain ASCII, no escaping needed."""
    return f'{{"index":{index},"name":"{name}"}}'


def lost_events_line(t_ns: int, writer: LineWriter, node: NodeState, lost: int, cpu: int) -> str:
    """A ``lost_events`` response (uint64 count as a string, as protojson prints it)."""
    name, _ = writer.node_parts(node)
    cpu_part = f',"cpu":{cpu}' if cpu else ""
    return (
        f'{{"lost_events":{{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"{lost}"'
        f'{cpu_part}}},"node_name":{name},"time":"{writer.timestamp(t_ns)}"}}'
    )


def node_status_line(t_ns: int, writer: LineWriter, node: NodeState, state: str) -> str:
    """A relay ``node_status`` response (no node_name: the relay itself reports it)."""
    name, _ = writer.node_parts(node)
    message = ',"message":"connection refused"' if state == "NODE_UNAVAILABLE" else ""
    return (
        f'{{"node_status":{{"state_change":"{state}","node_names":[{name}]{message}}},'
        f'"time":"{writer.timestamp(t_ns)}"}}'
    )
