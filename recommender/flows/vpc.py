"""What the AWS and GCP VPC flow-log readers share: IP-only ends, packet orientation.

Both formats log one record per packet direction (AWS per ENI and direction,
GCP per reporting VM and direction), with IP addresses and ports but no pod
identity. The readers build a relation of per-line columns (``a_*`` = packet
source, ``b_*`` = packet destination) and :func:`oriented_sql` turns it into
the oriented-packets relation of :func:`recommender.flows.hubble.oriented_packets_sql`
(same columns, same types), so the aggregation counts a connection once: the
two directions and the two ENIs/VMs share one connection key after orientation.

Orientation (FORMATS.md 1.3), in this order, and never silent:

1. TCP flags (AWS ``tcp-flags``, OR-ed over the window): SYN without ACK is
   the initiator's packet, SYN with ACK the responder's (``tcp_flags``).
2. The same port heuristic as Hubble's :func:`~recommender.flows.hubble_sql.reply_sql`:
   exactly one end in the Linux ephemeral range is the client (``inferred``).
3. Otherwise ``unknown``: counted as unoriented by the aggregation, like Hubble.
"""

from __future__ import annotations

from recommender.flows.hubble_sql import EPHEMERAL_PORTS, lit

#: IP protocol numbers -> FlowRecord protocol names; others become ``IP:<n>``.
IANA_PROTOCOLS: dict[int, str] = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMPv4", 58: "ICMPv6"}
#: Protocols with ports (NetworkPolicy can only express these).
PORT_PROTOCOLS = ("TCP", "UDP", "SCTP")
TCP_SYN, TCP_ACK = 2, 16


def protocol_name_sql(number: str) -> str:
    """The protocol name of an IP protocol number (an INTEGER column)."""
    cases = " ".join(f"WHEN {n} THEN {lit(name)}" for n, name in IANA_PROTOCOLS.items())
    return f"CASE {number} {cases} ELSE 'IP:' || {number}::VARCHAR END"


def endpoint_sql(
    e: str, ip: str, service_namespace: str = "NULL", service_name: str = "NULL"
) -> str:
    """A raw end in the struct shape of :func:`recommender.flows.hubble.endpoint_input_sql`.

    ``e`` is Hubble-endpoint JSON text (or NULL: an IP-only end, which the
    inventory attributes later by IP and time).
    """
    return (
        f"{{'e': ({e})::JSON, 'ip': ({ip})::VARCHAR, 'node': NULL::VARCHAR, "
        f"'names': []::VARCHAR[], 'service_namespace': ({service_namespace})::VARCHAR, "
        f"'service_name': ({service_name})::VARCHAR}}"
    )


def _ephemeral(port: str) -> str:
    lo, hi = EPHEMERAL_PORTS
    return f"coalesce({port} BETWEEN {lo} AND {hi}, false)"


def ports_reply_sql(a_port: str, b_port: str) -> str:
    """Hubble's port heuristic: is the packet a reply (NULL = cannot tell)?"""
    return (
        f"CASE WHEN {_ephemeral(a_port)} AND NOT {_ephemeral(b_port)} THEN false "
        f"WHEN {_ephemeral(b_port)} AND NOT {_ephemeral(a_port)} THEN true END"
    )


def flags_reply_sql(flags: str) -> str:
    """From TCP flags (an INTEGER or NULL): SYN without ACK -> false, SYN+ACK -> true.

    >>> flags_reply_sql("f")
    'CASE WHEN (f & 2) <> 0 THEN (f & 16) <> 0 END'
    """
    return f"CASE WHEN ({flags} & {TCP_SYN}) <> 0 THEN ({flags} & {TCP_ACK}) <> 0 END"


def _swap(name: str) -> list[str]:
    return [
        f"CASE WHEN coalesce(rep, false) THEN b_{name} ELSE a_{name} END AS src_{name}",
        f"CASE WHEN coalesce(rep, false) THEN a_{name} ELSE b_{name} END AS dst_{name}",
    ]


def reporter_sql() -> str:
    """Which end of the connection logged the record, from ``logged_at`` (``a``: the packet
    source's interface/VM, ``b``: the destination's) and the orientation."""
    return (
        "CASE WHEN logged_at IS NULL OR rep IS NULL THEN 'unknown' "
        "WHEN (logged_at = 'a') = (NOT rep) THEN 'src' ELSE 'dst' END"
    )


def oriented_sql(rows: str) -> str:
    """The oriented-packets relation of a reader's per-line ``rows``.

    ``rows`` has ``file_id, line_no, raw_ref, line_kind, reject_detail,
    source_format, time_start, time_end, observer, protocol, ip_version, verdict,
    drop_reason, a_ep, b_ep, a_port, b_port, flag_rep, logged_at``.
    """
    port_rep = ports_reply_sql("a_port", "b_port")
    ports = ", ".join(lit(p) for p in PORT_PROTOCOLS)
    return f"""
SELECT file_id, line_no, raw_ref, line_kind, reject_detail, 0::BIGINT AS lost, source_format,
       rep, orientation, time_start, observer, protocol, NULL::INTEGER AS icmp_type,
       ip_version, verdict, drop_reason, false AS is_policy_drop, []::VARCHAR[] AS policies,
       NULL::VARCHAR AS observation_point, NULL::INTEGER AS event_type,
       {", ".join(_swap("ep") + _swap("port"))}, rep AS is_reply, {reporter_sql()} AS reporter,
       CASE WHEN protocol IN ({ports}) THEN
            CASE WHEN coalesce(rep, false) THEN a_port ELSE b_port END END AS server_port,
       time_end
FROM (SELECT *, CASE WHEN line_kind <> 'flow' THEN NULL WHEN flag_rep IS NOT NULL THEN 'tcp_flags'
                     WHEN rep IS NOT NULL THEN 'inferred' ELSE 'unknown' END AS orientation
      FROM (SELECT *, CASE WHEN line_kind = 'flow' THEN coalesce(flag_rep,
                           CASE WHEN protocol IN ({ports}) THEN {port_rep} END) END AS rep
            FROM {rows}))"""
