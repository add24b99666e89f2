"""The ONE definition of Hubble normalization, as SQL expressions.

Everything that turns a Hubble JSON line into a FlowRecord (FORMATS.md 1.1,
2.1) lives here as SQL text built from Python constants, so every engine runs
the same rules: DuckDB today, Spark later (it needs a different ``Dialect``
for JSON parsing and lambdas; the rest is plain ``CASE``/list SQL).

Inputs are rows ``(file_id, line_no, text, reject)`` from
:mod:`recommender.flows.sources`. Names used in the expressions:

``d``  the parsed line (struct of :data:`TOP_SCHEMA`), ``f`` the Flow inside it
(``d.flow`` for jsonpb lines, the top level for legacy bare lines).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from recommender.flows.hubble_checks import (
    CHECK_CLASSES,
    LOST_REJECT,
    lost_ok_sql,
    number_error_sql,
)
from recommender.labels import (
    CILIUM_EXCLUDED_PREFIXES,
    CILIUM_PSEUDO_PREFIXES,
    EPHEMERAL_LABEL_KEYS,
)

# ---------------------------------------------------------------------------
# The structure parsed out of each line (flow.proto field names, protojson).
# Fields not listed are ignored, like `hubble observe --input-file` does.
# ---------------------------------------------------------------------------

# Numbers are read as text and range-checked before use (:func:`number_error_sql`):
# a lenient parse of an out-of-range number into INTEGER would give NULL, silently.
_PORTS = {"source_port": "VARCHAR", "destination_port": "VARCHAR"}
_TCP = {**_PORTS, "flags": {"SYN": "BOOLEAN", "ACK": "BOOLEAN"}}
_ICMP = {"type": "VARCHAR", "code": "VARCHAR"}
_POLICY = [{"name": "VARCHAR", "namespace": "VARCHAR", "kind": "VARCHAR"}]
ENDPOINT_SCHEMA: dict[str, object] = {
    "identity": "UBIGINT",
    "cluster_name": "VARCHAR",
    "namespace": "VARCHAR",
    "pod_name": "VARCHAR",
    "labels": ["VARCHAR"],
    "workloads": [{"name": "VARCHAR", "kind": "VARCHAR"}],
}
FLOW_SCHEMA: dict[str, object] = {
    "time": "VARCHAR",
    "verdict": "VARCHAR",
    "drop_reason": "VARCHAR",
    "drop_reason_desc": "VARCHAR",
    "IP": {"source": "VARCHAR", "destination": "VARCHAR", "ipVersion": "VARCHAR"},
    "l4": {
        "TCP": _TCP,
        "UDP": _PORTS,
        "SCTP": _PORTS,
        "ICMPv4": _ICMP,
        "ICMPv6": _ICMP,
        "VRRP": "JSON",
        "IGMP": "JSON",
    },
    "source": ENDPOINT_SCHEMA,
    "destination": ENDPOINT_SCHEMA,
    "Type": "VARCHAR",
    "node_name": "VARCHAR",
    "reply": "BOOLEAN",
    "is_reply": "BOOLEAN",
    "event_type": {"type": "VARCHAR"},
    "traffic_direction": "VARCHAR",
    "trace_observation_point": "VARCHAR",
    "source_names": ["VARCHAR"],
    "destination_names": ["VARCHAR"],
    "source_service": {"name": "VARCHAR", "namespace": "VARCHAR"},
    "destination_service": {"name": "VARCHAR", "namespace": "VARCHAR"},
    "egress_allowed_by": _POLICY,
    "ingress_allowed_by": _POLICY,
    "egress_denied_by": _POLICY,
    "ingress_denied_by": _POLICY,
}
#: The Flow as parsed per line: the two endpoints stay JSON text (``e`` in
#: :func:`endpoint_struct_sql`). They are parsed with :data:`ENDPOINT_SCHEMA` once per
#: distinct endpoint, not on every line. ``from_json`` is lenient (a mismatched
#: type gives NULL, never an error), so parsing later gives the same values.
LINE_FLOW_SCHEMA: dict[str, object] = {**FLOW_SCHEMA, "source": "JSON", "destination": "JSON"}
#: jsonpb/exporter lines wrap the Flow; legacy lines ARE the Flow (same keys at top).
TOP_SCHEMA: dict[str, object] = {
    "flow": LINE_FLOW_SCHEMA,
    "lost_events": {"num_events_lost": "VARCHAR"},
    "node_status": "JSON",
    "agent_event": "JSON",
    "debug_event": "JSON",
    **LINE_FLOW_SCHEMA,
}
NON_FLOW_KINDS: tuple[str, ...] = ("lost_events", "node_status", "agent_event", "debug_event")

# ---------------------------------------------------------------------------
# Enumerations (flow.proto) and their mapping.
# ---------------------------------------------------------------------------

#: Hubble verdict -> FlowRecord verdict (FORMATS.md 2.1.5). REDIRECTED = sent to
#: the L7 proxy, allowed at L3/L4. Absent key = VERDICT_UNKNOWN (protojson omits 0).
VERDICT_MAP: dict[str, str] = {
    "FORWARDED": "allowed",
    "REDIRECTED": "allowed",
    "TRACED": "allowed",
    "TRANSLATED": "allowed",
    "DROPPED": "denied",
    "AUDIT": "audit",
    "ERROR": "error",
    "VERDICT_UNKNOWN": "unknown",
}
#: Only these drop reasons say something about policy; the rest is datapath noise.
POLICY_DROP_REASONS: tuple[str, ...] = ("POLICY_DENIED", "POLICY_DENY", "AUTH_REQUIRED")
POLICY_DROP_CODES: tuple[int, ...] = (133, 181, 189)
TRAFFIC_DIRECTIONS: tuple[str, ...] = ("INGRESS", "EGRESS", "TRAFFIC_DIRECTION_UNKNOWN")
#: Per-connection verdict: the most telling record wins (lowest rank).
VERDICT_RANK: dict[str, int] = {
    "policy_denied": 0,
    "audit": 1,
    "allowed": 2,
    "denied": 3,
    "error": 4,
    "unknown": 5,
}
#: Linux default ``ip_local_port_range``: client ports of outgoing connections.
EPHEMERAL_PORTS = (32768, 60999)
#: Reserved numeric identities (pkg/identity/numericidentity.go) for field-masked endpoints.
RESERVED_IDENTITY_KIND: dict[int, str] = {
    1: "host",
    2: "world",
    4: "cluster_infra",
    6: "host",
    7: "cluster_infra",
    8: "cluster_infra",
    9: "world",
    10: "world",
}
LOCAL_CIDR_IDENTITY_MIN = 1 << 24
#: Owner kinds guessed from a pod name ``<name>-<rs hash>-<suffix>`` (Deployment pods).
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
DEPLOYMENT_POD_RE = f"^(.+)-{_SAFE}{{6,10}}-{_SAFE}{{5}}$"


@dataclass(frozen=True)
class Dialect:
    """SQL spellings that differ between engines."""

    def lam(self, var: str, body: str) -> str:
        """A one-argument lambda."""
        return f"lambda {var}: {body}"

    def parse_json(self, text: str, schema: dict[str, object]) -> str:
        """Parse ``text`` into a struct; NULL when it is not JSON (never an error)."""
        return f"try(from_json({text}, {lit(json.dumps(schema))}))"

    def to_json_string(self, expr: str) -> str:
        return f"to_json({expr})::VARCHAR"


DUCKDB = Dialect()


def lit(value: str) -> str:
    """A SQL string literal.

    >>> lit("it's")
    "'it''s'"
    """
    return "'" + value.replace("'", "''") + "'"


def stable_hash_sql(text: str) -> str:
    """56 bits of the MD5 of ``text`` as a BIGINT: the same number in every engine
    (engines' own ``hash`` functions differ), for deterministic tie-breaks."""
    return f"('0x' || substr(md5({text}), 1, 14))::BIGINT"


def in_list(expr: str, values: tuple[str, ...] | list[str]) -> str:
    """``expr IN ('a', 'b')``."""
    return f"{expr} IN ({', '.join(lit(v) for v in values)})"


# ---------------------------------------------------------------------------
# Line level: envelopes, parse, classification.
# ---------------------------------------------------------------------------

#: CRI log line: ``<time> <stream> <F|P> <payload>``.
CRI_RE = r"^\S+ (stdout|stderr) ([FP]) (.*)$"


#: ``{"log": "{...}"}`` (fluent-bit, promtail, docker json-file).
LOG_KEY_RE = r'"log"\s*:\s*"\{'


def payload_sql(text: str = "text") -> str:
    """Unwrap log-shipper envelopes (CRI lines, ``{"log": "..."}``) around a Hubble line."""
    return (
        f"CASE WHEN starts_with({text}, '{{\"flow\":') THEN {text} "
        f"WHEN regexp_matches({text}, {lit(CRI_RE)}) THEN regexp_extract({text}, {lit(CRI_RE)}, 3) "
        f"WHEN contains({text}, '\"log\"') AND regexp_matches({text}, {lit(LOG_KEY_RE)}) "
        f"THEN coalesce(try(json_extract_string({text}, '$.log')), {text}) ELSE {text} END"
    )


def parsed_sql(payload: str = "payload", dialect: Dialect = DUCKDB) -> str:
    """The parsed line, NULL for a blank one. (``trim`` copies the line: only when needed.)"""
    not_blank = f"CASE WHEN starts_with({payload}, '{{') THEN true ELSE trim({payload}) <> '' END"
    return f"CASE WHEN {not_blank} THEN {dialect.parse_json(payload, TOP_SCHEMA)} END"


def flow_struct_sql(d: str = "d") -> str:
    """The Flow struct of a parsed line, for both jsonpb and legacy shapes."""
    fields = ", ".join(f'{lit(k)}: {d}."{k}"' for k in LINE_FLOW_SCHEMA)
    legacy = is_legacy_sql(d)
    return f"CASE WHEN {d}.flow IS NOT NULL THEN {d}.flow WHEN {legacy} THEN {{{fields}}} END"


def is_legacy_sql(d: str = "d") -> str:
    """A bare legacy Flow has flow keys at the top level."""
    return f'({d}.verdict IS NOT NULL OR {d}."IP" IS NOT NULL OR {d}.l4 IS NOT NULL)'


def line_kind_sql(
    text: str = "text", d: str = "d", f: str = "f", reject: str = "reject", rr: str = "rr"
) -> str:
    """``flow``, ``blank``, one of :data:`NON_FLOW_KINDS`, or ``reject``.

    ``rr`` is the column holding :func:`reject_reason_sql` of ``f``.
    """
    non_flow = " ".join(f"WHEN {d}.{k} IS NOT NULL THEN {lit(k)}" for k in NON_FLOW_KINDS)
    lost = f"WHEN {d}.lost_events IS NOT NULL AND NOT {lost_ok_sql(d)} THEN 'reject' "
    # A parsed line is never blank, so the (copying) trim runs only for unparsed lines.
    return (
        f"CASE WHEN {reject} IS NOT NULL THEN 'reject' WHEN {f} IS NOT NULL THEN "
        f"CASE WHEN {rr} IS NULL THEN 'flow' ELSE 'reject' END "
        f"{lost}{non_flow} WHEN {d} IS NULL AND trim({text}) = '' THEN 'blank' ELSE 'reject' END"
    )


def reject_reason_sql(f: str = "f", ts: str | None = None) -> str:
    """Why a Flow cannot be used (NULL when it can): unknown enums, no time (or
    one outside years 1-9999), a number out of range. ``ts`` holds :func:`time_sql`
    of ``f`` when the query has it already."""
    verdicts = tuple(VERDICT_MAP)
    return (
        f"CASE WHEN {f}.verdict IS NOT NULL AND NOT {in_list(f + '.verdict', verdicts)} "
        f"THEN 'unknown verdict ' || {f}.verdict "
        f"WHEN {f}.traffic_direction IS NOT NULL AND NOT "
        f"{in_list(f + '.traffic_direction', TRAFFIC_DIRECTIONS)} "
        f"THEN 'unknown traffic_direction ' || {f}.traffic_direction "
        f"WHEN {ts or time_sql(f)} IS NULL THEN 'missing or invalid time' "
        f"ELSE {number_error_sql(f)} END"
    )


def reject_detail_sql(text: str, d: str, f: str, reject: str, payload: str, rr: str) -> str:
    """The reject reason with its detail, for ``path:line: reason`` samples."""
    return (
        f"CASE WHEN {reject} IS NOT NULL THEN {reject} "
        f"WHEN regexp_matches({text}, {lit(CRI_RE)}) AND regexp_extract({text}, {lit(CRI_RE)}, 2)"
        f" = 'P' THEN 'partial CRI log line (P) is not supported' "
        f"WHEN {d} IS NULL AND NOT json_valid({payload}) THEN 'not valid JSON' "
        f"WHEN {d} IS NULL THEN 'not a JSON object' "
        f"WHEN {f} IS NOT NULL THEN {rr} "
        f"WHEN {d}.lost_events IS NOT NULL THEN {lit(LOST_REJECT)} "
        f"WHEN json_type({payload}) <> 'OBJECT' THEN 'not a JSON object' "
        f"ELSE 'JSON object is not a Hubble flow or event' END"
    )


def reject_class_sql(detail: str = "reject_detail") -> str:
    """Group reject details into reasons for counting (drop the quoted value)."""
    checks = "".join(f"WHEN starts_with({detail}, {lit(c)}) THEN {lit(c)} " for c in CHECK_CLASSES)
    return (
        f"CASE WHEN starts_with({detail}, 'unknown verdict') THEN 'unknown verdict' "
        f"WHEN starts_with({detail}, 'unknown traffic_direction') THEN 'unknown traffic_direction' "
        f"WHEN starts_with({detail}, 'not UTF-8') THEN 'not UTF-8 text' "
        f"WHEN starts_with({detail}, 'corrupt gzip') THEN 'corrupt gzip data' "
        f"{checks}ELSE {detail} END"
    )


# ---------------------------------------------------------------------------
# Record level.
# ---------------------------------------------------------------------------


def time_sql(f: str = "f") -> str:
    """The event time; NULL when missing, invalid or outside years 1-9999 (Python's
    ``datetime`` range: the reports could not print it)."""
    return in_time_range_sql(f"try_cast({f}.time AS TIMESTAMP)")


def in_time_range_sql(t: str) -> str:
    """Timestamp ``t`` (a column: it is read twice), NULL outside years 1-9999."""
    return f"CASE WHEN year({t}) BETWEEN 1 AND 9999 THEN {t} END"


def verdict_sql(f: str = "f") -> str:
    cases = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in VERDICT_MAP.items())
    return f"CASE coalesce({f}.verdict, 'VERDICT_UNKNOWN') {cases} END"


def is_policy_drop_sql(f: str = "f") -> str:
    codes = ", ".join(str(c) for c in POLICY_DROP_CODES)
    return (
        f"(coalesce({f}.verdict = 'DROPPED', false) AND (coalesce("
        f"{in_list(f + '.drop_reason_desc', POLICY_DROP_REASONS)}, false) OR "
        f"({f}.drop_reason_desc IS NULL AND coalesce(try_cast({f}.drop_reason AS INTEGER) "
        f"IN ({codes}), false))))"
    )


def protocol_sql(f: str = "f") -> str:
    """TCP, UDP, SCTP, ICMPv4, ICMPv6, or ``IP:<number>`` for VRRP (112) and IGMP (2)."""
    return (
        f"CASE WHEN {f}.l4.\"TCP\" IS NOT NULL THEN 'TCP' "
        f"WHEN {f}.l4.\"UDP\" IS NOT NULL THEN 'UDP' "
        f'WHEN {f}.l4."SCTP" IS NOT NULL THEN \'SCTP\' WHEN {f}.l4."ICMPv4" IS NOT NULL '
        f"THEN 'ICMPv4' WHEN {f}.l4.\"ICMPv6\" IS NOT NULL THEN 'ICMPv6' "
        f'WHEN {f}.l4."VRRP" IS NOT NULL THEN \'IP:112\' WHEN {f}.l4."IGMP" IS NOT NULL '
        f"THEN 'IP:2' END"
    )


def port_sql(f: str, which: str) -> str:
    """A TCP/UDP/SCTP port as a number (read as text, range-checked per line)."""
    text = f'coalesce({f}.l4."TCP".{which}, {f}.l4."UDP".{which}, {f}.l4."SCTP".{which})'
    return f"try_cast({text} AS INTEGER)"


def icmp_sql(f: str, which: str = "type") -> str:
    """ICMP type (or code) as a number, v4 or v6."""
    return f'try_cast(coalesce({f}.l4."ICMPv4".{which}, {f}.l4."ICMPv6".{which}) AS INTEGER)'


def _ephemeral(port: str) -> str:
    lo, hi = EPHEMERAL_PORTS
    return f"coalesce({port} BETWEEN {lo} AND {hi}, false)"


def reply_sql(f: str = "f", sport: str | None = None, dport: str | None = None) -> str:
    """Is the packet a reply? Hubble's ``is_reply`` when present; else inferred.

    Inference order (FORMATS.md 1.3): the deprecated ``reply`` (true only when
    known), TCP SYN/SYN-ACK, ICMP echo request/reply, then the port heuristic
    (exactly one side in the ephemeral range is the client). NULL = unknown.
    """
    syn, ack = f'{f}.l4."TCP".flags."SYN"', f'{f}.l4."TCP".flags."ACK"'
    # (``sport``/``dport``: columns holding the port_sql values, when the query has them.)
    sport = sport or port_sql(f, "source_port")
    dport = dport or port_sql(f, "destination_port")
    v4, v6 = (f'try_cast({f}.l4."{v}".type AS INTEGER)' for v in ("ICMPv4", "ICMPv6"))
    return (
        f"CASE WHEN {f}.is_reply IS NOT NULL THEN {f}.is_reply WHEN {f}.reply THEN true "
        f"WHEN coalesce({syn}, false) THEN coalesce({ack}, false) "
        f"WHEN {v4} = 8 OR {v6} = 128 THEN false WHEN {v4} = 0 OR {v6} = 129 THEN true "
        f"WHEN {_ephemeral(sport)} AND NOT {_ephemeral(dport)} THEN false "
        f"WHEN {_ephemeral(dport)} AND NOT {_ephemeral(sport)} THEN true END"
    )


def orientation_sql(f: str = "f", rep: str = "rep") -> str:
    """Where the direction came from: ``hubble``, ``inferred`` or ``unknown``."""
    return (
        f"CASE WHEN {f}.is_reply IS NOT NULL THEN 'hubble' "
        f"WHEN {rep} IS NOT NULL THEN 'inferred' ELSE 'unknown' END"
    )


def reporter_sql(f: str = "f") -> str:
    return (
        f"CASE {f}.traffic_direction WHEN 'EGRESS' THEN 'src' WHEN 'INGRESS' THEN 'dst' "
        f"ELSE 'unknown' END"
    )


def policies_sql(f: str = "f", dialect: Dialect = DUCKDB) -> str:
    """``kind:namespace/name`` of every policy Hubble says allowed or denied the flow."""
    parts = [
        f"coalesce({f}.{k}, [])"
        for k in (
            "egress_allowed_by",
            "ingress_allowed_by",
            "egress_denied_by",
            "ingress_denied_by",
        )
    ]
    fmt = dialect.lam(
        "p",
        "coalesce(p.kind, '') || ':' || CASE WHEN coalesce(p.namespace, '') "
        "<> '' THEN p.namespace || '/' ELSE '' END || coalesce(p.name, '')",
    )
    return f"list_transform(list_concat({', '.join(parts)}), {fmt})"


# ---------------------------------------------------------------------------
# Endpoint level: labels, kind, identity.
# ---------------------------------------------------------------------------


#: Label lists are handled as one string ``\x1fl1\x1fl2\x1f`` (column ``<end>_j``):
#: regular expressions over it are much faster than per-element lambdas.
SEP = "\x1f"


def joined_labels_sql(e: str) -> str:
    """The endpoint's labels as one ``SEP``-delimited string with ``=`` turned into ``\x01``.

    ``=`` never occurs in label keys or values, and ``\x01`` sorts below every
    key character, so sorting ``key\x01value`` strings sorts by key.
    """
    return (
        f"replace(chr(31) || array_to_string(coalesce({e}.labels, []), chr(31)) || chr(31), "
        f"'=', chr(1))"
    )


def _re_escape(text: str) -> str:
    return "".join("\\" + c if c in ".^$*+?()[]{}|\\/" else c for c in text)


def unstable_label_re() -> str:
    """Regex for a ``k8s:`` label whose key is unstable (twin of ``labels.is_ephemeral_key``)."""
    exact = [_re_escape(k) for k in sorted(EPHEMERAL_LABEL_KEYS)]
    prefixes = [
        _re_escape(p) + "[^\x01\x1f]*" for p in CILIUM_PSEUDO_PREFIXES + CILIUM_EXCLUDED_PREFIXES
    ]
    contains = ["[^\x01\x1f]*beta\\.kubernetes\\.io[^\x01\x1f]*"]
    # k8s labels are always key=value, so the key ends at \x01: no prefix over-match.
    return "\x1fk8s:(?:" + "|".join(exact + prefixes + contains) + ")\x01[^\x1f]*"


def k8s_label_sql(j: str, key: str) -> str:
    """Value of one ``k8s:`` label (pseudo labels such as the namespace), or NULL."""
    pattern = "\x1fk8s:" + _re_escape(key) + "\x01([^\x1f]*)"
    return f"nullif(regexp_extract({j}, {lit(pattern)}, 1), '')"


def stable_labels_json_sql(j: str) -> str:
    """Canonical JSON (as :func:`recommender.labels.encode_labels`) of the stable k8s labels.

    Unstable labels are cut out of the joined string, the ``k8s:`` ones
    extracted and sorted by key. Keys and values are encoded by the engine's JSON
    encoder (``to_json`` of a string), never pasted into quotes: the bytes equal
    ``encode_labels`` for every label that passed validation (no escapes needed),
    and stay valid JSON for any other text.
    """
    cut = f"regexp_replace({j}, {lit(unstable_label_re())}, '', 'g')"
    kept = f"regexp_extract_all({cut}, {lit(chr(31) + 'k8s:([^' + chr(31) + ']*)')}, 1)"
    # A label without '=' has the empty value.
    key = "split_part(p, chr(1), 1)"
    value = r"regexp_extract(p, '\x01([\s\S]*)', 1)"
    pair = f"to_json({key})::VARCHAR || ':' || to_json({value})::VARCHAR"
    body = f"array_to_string(list_transform(list_sort({kept}), lambda p: {pair}), ',')"
    return f"'{{' || {body} || '}}'"


def has_label_sql(j: str, label: str) -> str:
    return f"contains({j}, {lit(SEP + label + SEP)})"


def has_label_prefix_sql(j: str, prefix: str) -> str:
    return f"contains({j}, {lit(SEP + prefix)})"


def peer_kind_sql(e: str, j: str) -> str:
    """pod, host, world, cluster_infra or unknown, from Hubble's endpoint alone.

    ``j`` is the endpoint's :func:`joined_labels_sql`. A pod name wins over
    ``reserved:world`` (L7 proxy records, FORMATS.md 3.9).
    """
    world = " OR ".join(
        [has_label_sql(j, f"reserved:{w}") for w in ("world", "world-ipv4", "world-ipv6")]
        + [has_label_prefix_sql(j, p) for p in ("cidr:", "fqdn:")]
    )
    by_id = " ".join(f"WHEN {k} THEN {lit(v)}" for k, v in RESERVED_IDENTITY_KIND.items())
    return (
        f"CASE WHEN coalesce({e}.pod_name, '') <> '' THEN 'pod' "
        f"WHEN {has_label_sql(j, 'reserved:kube-apiserver')} THEN 'cluster_infra' "
        f"WHEN {has_label_prefix_sql(j, 'k8s:')} THEN 'pod' "
        f"WHEN {has_label_sql(j, 'reserved:host')} OR {has_label_sql(j, 'reserved:remote-node')} "
        f"THEN 'host' WHEN {has_label_sql(j, 'reserved:health')} OR "
        f"{has_label_sql(j, 'reserved:ingress')} THEN 'cluster_infra' "
        f"WHEN {world} THEN 'world' "
        f"WHEN len(coalesce({e}.labels, [])) = 0 THEN CASE {e}.identity {by_id} ELSE "
        f"CASE WHEN {e}.identity >= {LOCAL_CIDR_IDENTITY_MIN} AND {e}.identity < "
        f"{2 * LOCAL_CIDR_IDENTITY_MIN} THEN 'world' ELSE 'unknown' END END "
        f"ELSE 'unknown' END"
    )


def peer_detail_sql(e: str, j: str, kind: str) -> str:
    """Name of a cluster_infra peer, or the reason an unknown peer is unknown."""
    return (
        f"CASE WHEN {kind} = 'cluster_infra' THEN CASE "
        f"WHEN {has_label_sql(j, 'reserved:kube-apiserver')} OR {e}.identity = 7 "
        f"THEN 'kube-apiserver' WHEN {has_label_sql(j, 'reserved:health')} OR {e}.identity = 4 "
        f"THEN 'health' ELSE 'ingress' END "
        f"WHEN {kind} = 'unknown' THEN CASE "
        f"WHEN {has_label_sql(j, 'reserved:init')} THEN 'reserved-init' "
        f"WHEN {has_label_sql(j, 'reserved:unmanaged')} THEN 'reserved-unmanaged' "
        f"WHEN len(coalesce({e}.labels, [])) = 0 AND coalesce({e}.identity, 0) = 0 "
        f"THEN 'no-identity' ELSE 'unclassified-identity' END END"
    )


def endpoint_struct_sql(text: str, dialect: Dialect = DUCKDB) -> str:
    """An endpoint's JSON text (see :data:`LINE_FLOW_SCHEMA`) as a struct of
    :data:`ENDPOINT_SCHEMA` (NULL when absent or not an object)."""
    return f"CASE WHEN {text} IS NOT NULL THEN {dialect.parse_json(text, ENDPOINT_SCHEMA)} END"


def endpoint_columns(e: str, j: str, node: str, kind: str) -> dict[str, str]:
    """Per-endpoint FlowRecord fields (without ``src_``/``dst_``).

    ``j`` holds :func:`joined_labels_sql` and ``kind`` :func:`peer_kind_sql` of ``e``.
    """
    wl = f"{e}.workloads[1]"
    return {
        "kind": kind,
        "detail": peer_detail_sql(e, j, kind),
        "cluster": f"coalesce(nullif({e}.cluster_name, ''), "
        f"{k8s_label_sql(j, 'io.cilium.k8s.policy.cluster')})",
        "namespace": f"coalesce(nullif({e}.namespace, ''), "
        f"{k8s_label_sql(j, 'io.kubernetes.pod.namespace')})",
        "pod": f"nullif({e}.pod_name, '')",
        "workload_kind": f"nullif({wl}.kind, '')",
        "workload_name": f"nullif({wl}.name, '')",
        "labels": f"CASE WHEN {kind} = 'pod' THEN {stable_labels_json_sql(j)} END",
        "service_account": k8s_label_sql(j, "io.cilium.k8s.policy.serviceaccount"),
        "node": f"CASE WHEN {has_label_sql(j, 'reserved:host')} THEN "
        f"regexp_extract({node}, '[^/]*$') END",
    }
