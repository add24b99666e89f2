"""Range and syntax checks of Hubble input, as SQL: a lying field is a counted reject.

Two levels, like the normalization they guard (:mod:`recommender.flows.hubble_sql`):

* **Per line** (:func:`number_error_sql`): every number of the Flow is read as
  text and range-checked (ports 0-65535, ICMP type/code 0-255, ``event_type``,
  ``drop_reason``, ``lost_events.num_events_lost``). A lenient parse into an
  integer type would turn ``70000`` into a port and ``1e10`` into NULL, silently.
* **Per distinct endpoint** (:func:`endpoint_error_sql`): labels (the Kubernetes
  API's syntax for ``k8s:`` labels, no control character in any label), names,
  the numeric identity, IPs and DNS names. A record with an invalid endpoint is
  rejected (``line_kind = 'reject'``) before it can become an identity, so no
  value that reaches a selector or the identity strings (joined with control
  characters) can contain a quote, a backslash or a separator.

The regular expressions are written for both RE2 (DuckDB) and Java (Spark):
``\\A``/``\\z`` anchor at the very end (Java's ``$`` also matches before a final
newline), no look-around.
"""

from __future__ import annotations

from recommender.labels import (
    DNS1123_LABEL_RE,
    DNS1123_SUBDOMAIN_RE,
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
)

#: Reject classes of this module: the detail is ``<class>: <value>`` or the class alone.
CHECK_CLASSES: tuple[str, ...] = (
    "invalid label",
    "duplicate label key",
    "invalid endpoint name",
    "identity out of range",
    "invalid IP address",
    "invalid DNS name",
    "number out of range",
)

_NS_LABELS = "io.cilium.k8s.namespace.labels."
_SA_KEY = "io.cilium.k8s.policy.serviceaccount"
_OCTET = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_RE = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H = "[0-9A-Fa-f]{1,4}"
#: IPv6 text forms (RFC 4291 2.2), each accepted by Python's ``ipaddress`` too.
IPV6_RE = "|".join(
    [
        rf"(?:{_H}:){{7}}{_H}",
        rf"(?:{_H}:){{1,7}}:",
        *[rf"(?:{_H}:){{1,{7 - n}}}(?::{_H}){{{n}}}" for n in range(1, 7)],
        rf"(?:{_H}:){{0,6}}:(?::{_H}){{1,7}}",
        rf"::(?:[Ff]{{4}}(?::0{{1,4}})?:)?{IPV4_RE}",
        rf"(?:{_H}:){{1,4}}:{IPV4_RE}",
        "::",
    ]
)


def lit(value: str) -> str:
    """A SQL string literal (as ``hubble_sql.lit``, which imports this module)."""
    return "'" + value.replace("'", "''") + "'"


def _rx(pattern: str) -> str:
    """A whole-string regular expression for RE2 and Java."""
    return lit(rf"\A(?:{pattern})\z")


def k8s_label_re() -> str:
    """``k8s:<key>=<value>`` with the API's key and value syntax.

    Cilium's pseudo labels are labels too, with two exceptions: a namespace
    label keeps its own key after ``io.cilium.k8s.namespace.labels.``, and the
    service account value is a ServiceAccount name (a DNS subdomain, up to 253).
    """
    ns = _NS_LABELS.replace(".", r"\.")
    sa = _SA_KEY.replace(".", r"\.")
    return rf"k8s:(?:(?:{ns})?{LABEL_KEY_RE}={LABEL_VALUE_RE}|{sa}={DNS1123_SUBDOMAIN_RE})"


def label_ok_sql(label: str) -> str:
    """Is one Hubble label string acceptable? ``k8s:`` labels must be valid
    Kubernetes labels; every label must be free of control characters."""
    prefix_end = f"CASE WHEN starts_with({label}, {lit('k8s:' + _NS_LABELS)}) THEN 289 ELSE 258 END"
    k8s = (
        f"(regexp_matches({label}, {_rx(k8s_label_re())}) "
        # The key prefix (before the first '/') is a DNS subdomain of at most 253.
        f"AND strpos({label}, '/') <= {prefix_end} "
        f"AND NOT ({_longer_than(label, 293)} AND starts_with({label}, "
        f"{lit('k8s:' + _SA_KEY + '=')})))"
    )
    return (
        f"CASE WHEN starts_with({label}, 'k8s:') THEN {k8s} "
        rf"ELSE NOT regexp_matches({label}, '[\x00-\x1f\x7f]') END"
    )


def shown_sql(value: str) -> str:
    """A value as a reject detail shows it: at most 80 characters, control
    characters as ``?`` (a detail is printed on one line)."""
    return rf"regexp_replace(substr({value}, 1, 80), '[\x00-\x1f\x7f]', '?', 'g')"


def _longer_than(value: str, n: int) -> str:
    """``length(value) > n`` (``length`` means a list's size to the Spark rewrite)."""
    return rf"regexp_matches({value}, '\A[\s\S]{{{n + 1}}}')"


def _name_ok(value: str, pattern: str, max_len: int) -> str:
    return (
        f"({value} IS NULL OR {value} = '' OR (NOT {_longer_than(value, max_len)} AND "
        f"regexp_matches({value}, {_rx(pattern)})))"
    )


#: Lenient name syntax for cluster, node and workload names (no separators, no
#: control characters): Cilium's own rules changed between versions.
_LOOSE_NAME = "[A-Za-z0-9](?:[-A-Za-z0-9_.:/]*[A-Za-z0-9])?"
_DNS_NAME = r"[A-Za-z0-9_*](?:[-A-Za-z0-9_.*]*[A-Za-z0-9_.])?"


def _label_error(e: str) -> str:
    labels = f"coalesce({e}.labels, [])"
    bad = f"list_filter({labels}, lambda l: NOT coalesce({label_ok_sql('l')}, false))"
    keys = (
        f"list_transform(list_filter({labels}, lambda l: starts_with(l, 'k8s:')), "
        "lambda l: split_part(l, '=', 1))"
    )
    return (
        f"CASE WHEN len({bad}) > 0 THEN 'invalid label: ' || {shown_sql(bad + '[1]')} "
        f"WHEN len(list_distinct({keys})) < len({keys}) THEN 'duplicate label key' END"
    )


def _names_error(e: str, ep: str) -> str:
    wl = f"{e}.workloads[1]"
    checks = [
        (f"{e}.namespace", DNS1123_LABEL_RE, 63),
        (f"{e}.pod_name", DNS1123_SUBDOMAIN_RE, 253),
        (f"{e}.cluster_name", _LOOSE_NAME, 253),
        (f"{wl}.name", _LOOSE_NAME, 253),
        (f"{wl}.kind", "[A-Za-z][A-Za-z0-9]*", 63),
        (f"{ep}.service_namespace", DNS1123_LABEL_RE, 63),
        (f"{ep}.service_name", DNS1123_LABEL_RE, 63),
        (f"{ep}.node", _LOOSE_NAME, 507),
    ]
    whens = " ".join(
        f"WHEN NOT {_name_ok(v, p, n)} THEN 'invalid endpoint name: ' || {shown_sql(v)}"
        for v, p, n in checks
    )
    return f"CASE {whens} END"


_IDENTITY_TEXT = lit('{"identity": "VARCHAR"}')


def endpoint_error_sql(ep: str, e: str) -> str:
    """Why the raw endpoint ``ep`` (``endpoint_input_sql``) cannot be used, or NULL.

    ``e`` is its parsed endpoint. The identity is a ``uint32`` (flow.proto),
    read again as text: the endpoint parse reads it leniently.
    """
    ident = f"try(from_json({ep}.e, {_IDENTITY_TEXT})).identity"
    ident_ok = (
        f"({ident} IS NULL OR (regexp_matches({ident}, {_rx('[0-9]{1,10}')}) "
        f"AND try_cast({ident} AS BIGINT) <= 4294967295))"
    )
    ip_ok = f"({ep}.ip IS NULL OR regexp_matches({ep}.ip, {_rx(IPV4_RE + '|' + IPV6_RE)}))"
    bad_name = f"list_filter({ep}.names, lambda n: NOT {_name_ok('n', _DNS_NAME, 253)})"
    return (
        f"coalesce({_label_error(e)}, {_names_error(e, ep)}, "
        f"CASE WHEN NOT {ident_ok} THEN 'identity out of range' "
        f"WHEN NOT {ip_ok} THEN 'invalid IP address: ' || {shown_sql(ep + '.ip')} "
        f"WHEN len({bad_name}) > 0 THEN 'invalid DNS name: ' || {shown_sql(bad_name + '[1]')} "
        "END)"
    )


# ---------------------------------------------------------------------------
# Per line: numbers.
# ---------------------------------------------------------------------------


def _uint_ok(text: str, max_value: int) -> str:
    """The canonical digits of a number from 0 to ``max_value``: no sign, point,
    exponent, space or hex (both engines' casts accept some of those, differently).
    Comparing with the number printed back is exact, and cheaper than a regex on
    every line."""
    n = f"try_cast({text} AS BIGINT)"
    return (
        f"({text} IS NULL OR coalesce({n} BETWEEN 0 AND {max_value} "
        f"AND {n}::VARCHAR = {text}, false))"
    )


#: (number of the Flow ``f`` as the reader uses it, its name, largest value). A number
#: the reader does not use (ports of a second ``l4`` member, the ICMP code) cannot
#: change a conclusion, and is not checked.
def _flow_numbers(f: str) -> list[tuple[str, str, int]]:
    def used(which: str, protos: tuple[str, ...]) -> str:
        return "coalesce(" + ", ".join(f'{f}.l4."{p}".{which}' for p in protos) + ")"

    ports = ("TCP", "UDP", "SCTP")
    return [
        (used("source_port", ports), "l4 source_port", 65535),
        (used("destination_port", ports), "l4 destination_port", 65535),
        (used("type", ("ICMPv4", "ICMPv6")), "l4 ICMP type", 255),
        (f"{f}.event_type.type", "event_type.type", 255),
        (f"{f}.drop_reason", "drop_reason", 4294967295),
    ]


#: ``num_events_lost`` is a uint64; larger counts than this are not believable and
#: would overflow the sums.
MAX_LOST_EVENTS = 4294967295


def number_error_sql(f: str = "f") -> str:
    """The first number of Flow ``f`` out of its range, as a reject detail, or NULL."""
    whens = " ".join(
        f"WHEN NOT {_uint_ok(text, top)} THEN {lit(f'number out of range: {name} (0-{top})')}"
        for text, name, top in _flow_numbers(f)
    )
    return f"CASE {whens} END"


def lost_ok_sql(d: str = "d") -> str:
    """Is a ``lost_events`` line's count a believable number?"""
    return _uint_ok(f"{d}.lost_events.num_events_lost", MAX_LOST_EVENTS)


LOST_REJECT = f"number out of range: lost_events.num_events_lost (0-{MAX_LOST_EVENTS})"
