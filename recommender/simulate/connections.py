"""One connection -> the Hubble lines a Cilium 1.20 cluster prints for it.

A forwarded TCP connection between pods on two nodes gives, at the client's
node, a policy-verdict event (type 5, EGRESS) and a TO_OVERLAY trace; at the
server's node a policy-verdict event (INGRESS) and a TO_ENDPOINT trace; and,
when replies are on, the SYN-ACK leaving the server (TO_OVERLAY, is_reply
true) and arriving at the client (TO_ENDPOINT, EGRESS, is_reply true). Some
reply traces carry no conntrack state (no direction, no is_reply), as older
trace points do. Policy drops give a DROPPED policy-verdict plus one drop
event (type 1, ``POLICY_DENIED``, no is_reply) per SYN retransmission.
"""

from __future__ import annotations

from dataclasses import dataclass

from recommender.simulate.cluster import NodeState
from recommender.simulate.hubble_writer import (
    DROP_EVENT,
    POLICY_VERDICT,
    REPLY_ABSENT,
    REPLY_FALSE,
    REPLY_TRUE,
    LineWriter,
    Peer,
    iface_json,
    l4_json,
    trace_event,
)

#: A line with its time and is_reply state (REPLY_TRUE / REPLY_FALSE / REPLY_ABSENT).
Line = tuple[int, str, int]
US = 1000
#: TCP SYN retransmissions after 1 s and 3 s (Linux initial RTO 1 s, doubling).
RETRY_NS = (0, 1_000_000_000, 3_000_000_000)
OVERLAY = iface_json(13, "cilium_vxlan")
ETH0 = iface_json(2, "eth0")


@dataclass
class Conn:
    """A connection attempt from ``client`` to ``server`` at time ``t`` (ns).

    ``outcome``: ``ok``, ``refused`` (RST, nothing listens), ``drop_ingress``
    (server-side policy), ``drop_egress`` (client-side policy).
    """

    t: int
    client: Peer
    server: Peer
    sport: int
    dport: int
    protocol: str
    outcome: str = "ok"
    names: str | None = None
    reply: bool = True
    established: bool = False
    unknown_reply: bool = False


def observer_of(peer: Peer) -> NodeState | None:
    """The node where ``peer`` is local, if any."""
    if peer.kind == "pod" and peer.pod is not None:
        return peer.pod.node
    if peer.kind == "host":
        return peer.node
    return None


def _outbound_point(server: Peer, client_node: NodeState) -> tuple[str, str | None] | None:
    """Trace point of a packet leaving the client's node towards ``server``."""
    if server.kind == "pod":
        assert server.pod is not None
        return None if server.pod.node.index == client_node.index else ("TO_OVERLAY", OVERLAY)
    if server.kind == "world":
        return "TO_NETWORK", ETH0
    return "TO_STACK", None


def emit_connection(w: LineWriter, c: Conn) -> list[Line]:
    """Every line the connection produces, unsorted."""
    out: list[Line] = []
    cn, sn = observer_of(c.client), observer_of(c.server)
    l4, summary = l4_json(c.protocol, c.sport, c.dport, "SYN")
    attempts = RETRY_NS if c.protocol == "TCP" else RETRY_NS[:1]
    if c.client.kind == "pod" and cn is not None:
        if c.outcome == "drop_egress":
            _drops(w, out, c, cn, "EGRESS", l4, summary, attempts, c.t)
            return out
        _client_request(w, out, c, cn, l4, summary)
    if c.server.kind != "pod" or sn is None:
        if c.reply and cn is not None and c.client.kind == "pod":
            _client_reply(w, out, c, cn, "SYNACK")
        return out
    t2 = c.t + w.rng.randint(80, 400) * US
    if c.outcome == "drop_ingress":
        _drops(w, out, c, sn, "INGRESS", l4, summary, attempts, t2)
        return out
    _server_request(w, out, c, sn, l4, summary, t2)
    refused = c.outcome == "refused" and c.protocol == "TCP"
    if c.reply or refused:
        flags = "RSTACK" if refused else "SYNACK"
        _server_reply(w, out, c, sn, flags, t2 + w.rng.randint(20, 300) * US)
        if c.client.kind == "pod" and cn is not None:
            _client_reply(w, out, c, cn, flags)
    return out


def _client_request(
    w: LineWriter, out: list[Line], c: Conn, cn: NodeState, l4: str, summary: str
) -> None:
    t = c.t
    out.append(
        (
            t,
            w.line(
                t,
                cn,
                c.client,
                c.server,
                l4,
                summary,
                event=POLICY_VERDICT,
                direction="EGRESS",
                match_type=4,
                names=c.names,
            ),
            REPLY_FALSE,
        )
    )
    hop = _outbound_point(c.server, cn)
    if hop is not None:
        t1 = t + w.rng.randint(5, 60) * US
        out.append(
            (
                t1,
                w.line(
                    t1,
                    cn,
                    c.client,
                    c.server,
                    l4,
                    summary,
                    event=trace_event(hop[0]),
                    direction="EGRESS",
                    point=hop[0],
                    reason="NEW",
                    iface=hop[1],
                    names=c.names,
                ),
                REPLY_FALSE,
            )
        )


def _server_request(
    w: LineWriter, out: list[Line], c: Conn, sn: NodeState, l4: str, summary: str, t: int
) -> None:
    assert c.server.pod is not None
    lxc = iface_json(c.server.pod.ifindex, c.server.pod.iface)
    out.append(
        (
            t,
            w.line(
                t,
                sn,
                c.client,
                c.server,
                l4,
                summary,
                event=POLICY_VERDICT,
                direction="INGRESS",
                match_type=4,
            ),
            REPLY_FALSE,
        )
    )
    t1 = t + w.rng.randint(5, 40) * US
    out.append(
        (
            t1,
            w.line(
                t1,
                sn,
                c.client,
                c.server,
                l4,
                summary,
                event=trace_event("TO_ENDPOINT"),
                direction="INGRESS",
                point="TO_ENDPOINT",
                reason="NEW",
                iface=lxc,
            ),
            REPLY_FALSE,
        )
    )
    if c.established and c.protocol == "TCP":
        data, data_summary = l4_json("TCP", c.sport, c.dport, "ACKPSH")
        t2 = t1 + w.rng.randint(500, 5000) * US
        out.append(
            (
                t2,
                w.line(
                    t2,
                    sn,
                    c.client,
                    c.server,
                    data,
                    data_summary,
                    event=trace_event("TO_ENDPOINT"),
                    direction="INGRESS",
                    point="TO_ENDPOINT",
                    reason="ESTABLISHED",
                    iface=lxc,
                ),
                REPLY_FALSE,
            )
        )


def _server_reply(
    w: LineWriter, out: list[Line], c: Conn, sn: NodeState, flags: str, t: int
) -> None:
    """The reply leaving the server's node (nothing if the client is on the same node)."""
    if c.client.kind == "pod" and observer_of(c.client) is sn:
        return
    l4, summary = l4_json(c.protocol, c.dport, c.sport, flags)
    point, iface = {
        "pod": ("TO_OVERLAY", OVERLAY),
        "world": ("TO_NETWORK", ETH0),
        "host": ("TO_STACK", None),
    }.get(c.client.kind, ("TO_STACK", None))
    if c.unknown_reply and point == "TO_OVERLAY":
        out.append(
            (
                t,
                w.line(
                    t,
                    sn,
                    c.server,
                    c.client,
                    l4,
                    summary,
                    event=trace_event(point),
                    point=point,
                    is_reply=REPLY_ABSENT,
                    iface=iface,
                ),
                REPLY_ABSENT,
            )
        )
        return
    out.append(
        (
            t,
            w.line(
                t,
                sn,
                c.server,
                c.client,
                l4,
                summary,
                event=trace_event(point),
                direction="INGRESS",
                point=point,
                reason="REPLY",
                is_reply=REPLY_TRUE,
                iface=iface,
            ),
            REPLY_TRUE,
        )
    )


def _client_reply(w: LineWriter, out: list[Line], c: Conn, cn: NodeState, flags: str) -> None:
    assert c.client.pod is not None
    l4, summary = l4_json(c.protocol, c.dport, c.sport, flags)
    t = c.t + w.rng.randint(400, 3000) * US
    lxc = iface_json(c.client.pod.ifindex, c.client.pod.iface)
    out.append(
        (
            t,
            w.line(
                t,
                cn,
                c.server,
                c.client,
                l4,
                summary,
                event=trace_event("TO_ENDPOINT"),
                direction="EGRESS",
                point="TO_ENDPOINT",
                reason="REPLY",
                is_reply=REPLY_TRUE,
                iface=lxc,
            ),
            REPLY_TRUE,
        )
    )


def _drops(
    w: LineWriter,
    out: list[Line],
    c: Conn,
    node: NodeState,
    direction: str,
    l4: str,
    summary: str,
    attempts: tuple[int, ...],
    t: int,
) -> None:
    """A DROPPED policy verdict plus one drop notification per attempt."""
    names = c.names if direction == "EGRESS" else None
    out.append(
        (
            t,
            w.line(
                t,
                node,
                c.client,
                c.server,
                l4,
                summary,
                event=POLICY_VERDICT,
                verdict="DROPPED",
                direction=direction,
                drop=True,
                names=names,
            ),
            REPLY_FALSE,
        )
    )
    for delay in attempts:
        td = t + delay + w.rng.randint(2, 30) * US
        out.append(
            (
                td,
                w.line(
                    td,
                    node,
                    c.client,
                    c.server,
                    l4,
                    summary,
                    event=DROP_EVENT,
                    verdict="DROPPED",
                    direction=direction,
                    drop=True,
                    is_reply=REPLY_ABSENT,
                    names=names,
                ),
                REPLY_ABSENT,
            )
        )
