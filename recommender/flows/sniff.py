"""Guess what a rejected flow file is, so the error can say "looks like an AWS VPC flow log".

netpol reads the formats of :mod:`recommender.flows.formats` (and Parquet); a
file in another format is rejected line by line. :func:`sniff_format` looks at
the first bytes of such a file and names the format it recognises. It is a hint
for the message only: nothing is parsed or accepted because of it.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

#: Bytes read from the head of a file to sniff it.
SNIFF_BYTES = 64 * 1024

_AWS_HEADER = re.compile(r"^version\b.*\bsrcaddr\b.*\bdstaddr\b")
_AWS_RECORD = re.compile(r"^[2-9] .*\b(eni|vpc|subnet|i)-[0-9a-fx]+\b")
#: The protocol names of the flow-logger's pretty-print mode.
_IP_PROTOCOL_NAMES = ("TCP", "UDP", "SCTP", "ICMP", "IPV6-ICMP")
_YAML = re.compile(r"^(---\s*$|apiVersion:|kind:|items:|metadata:)", re.MULTILINE)


def _all(*needles: str) -> Callable[[str], bool]:
    return lambda text: all(n in text for n in needles)


def is_aws(text: str) -> bool:
    """An AWS VPC flow log: its field-list header (plain, or the CloudWatch
    ``${version} ${srcaddr} ...`` format string) or a version-2+ record naming an ENI.

    >>> is_aws("${version} ${account-id} ${interface-id} ${srcaddr} ${dstaddr}")
    True
    """
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    header = re.sub(r"\$\{|\}", "", lines[0]).strip() if lines else ""
    return bool(lines) and (
        bool(_AWS_HEADER.match(header)) or sum(bool(_AWS_RECORD.match(x)) for x in lines) > 0
    )


def is_antrea_csv(text: str) -> bool:
    """An Antrea Flow Aggregator flow-logger CSV line (no header, 30 fixed columns):
    two UNIX-second times, the protocol as a name (pretty-print mode) or a number.

    >>> is_antrea_csv("1,2,10.0.0.1,10.0.0.2,40000,80,TCP" + "," * 23)
    True
    """
    fields = text.splitlines()[0].split(",") if text.strip() else []
    return (
        len(fields) >= 30
        and fields[0].isdigit()
        and fields[1].isdigit()
        and (fields[6].upper() in _IP_PROTOCOL_NAMES or fields[6].isdigit())
    )


def _is_csv(text: str) -> bool:
    lines = [ln for ln in text.splitlines()[:10] if ln.strip()]
    counts = {ln.count(",") for ln in lines}
    uniform = len(counts) == 1 and counts.pop() >= 2
    return bool(lines) and uniform and text.lstrip()[:1] not in ("{", "[")


#: The tests of the formats netpol reads, by ``--format`` name (reused by
#: :mod:`recommender.flows.formats` for auto-detection).
#: GCP: a Cloud Logging entry, or its bare ``jsonPayload`` (both read by the reader).
is_gcp = _all('"connection"', '"src_ip"', '"dest_ip"')
is_calico = _all('"source_namespace"', '"dest_ip"')


def is_antrea_json(text: str) -> bool:
    """Antrea flow records as JSON: ``antctl get flowrecords -o json`` (IPFIX names) or a
    ClickHouse ``flows`` JSONEachRow export."""
    return (
        '"destinationIPv4Address"' in text
        or '"destinationIPv6Address"' in text
        or ('"flowStartSeconds"' in text and '"destinationIP"' in text)
    )


def is_flowrecord_csv(text: str) -> bool:
    """A CSV table of FlowRecords: a first line naming ``time_start``, ``protocol``
    and a source end (``src_ip`` or ``src_namespace``).

    >>> is_flowrecord_csv("time_start,src_ip,dst_ip,dst_port,protocol\\n")
    True
    """
    first = text.split("\n", 1)[0].lstrip("\ufeff")
    names = {n.strip().strip('"').lower() for n in first.split(",")}
    return {"time_start", "protocol"} <= names and bool(names & {"src_ip", "src_namespace"})


def is_inspektor_gadget(text: str) -> bool:
    """Inspektor Gadget JSON: a ``k8s`` block with a pod name or an endpoint address."""
    return '"k8s"' in text and ('"podName"' in text or '"addr"' in text)


def is_hubble(text: str) -> bool:
    """Hubble JSON: a ``flow`` with a verdict or IP (tried after the specific formats)."""
    return '"flow"' in text and ('"verdict"' in text or '"IP"' in text)


#: (name, test) in order: the first match names the format.
_FORMATS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("an AWS VPC flow log", is_aws),
    ("a GCP VPC flow log", is_gcp),
    ("a Calico flow log", is_calico),
    ("Antrea flow records (JSON)", is_antrea_json),
    ("an Antrea flow-aggregator CSV", is_antrea_csv),
    ("Inspektor Gadget output", is_inspektor_gadget),
)
#: Tried after the Hubble test: they would also match a Hubble file in some way.
_GENERIC: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("YAML (a Kubernetes manifest?)", lambda t: bool(_YAML.search(t))),
    ("Kubernetes objects (JSON), not flow records", _all('"apiVersion"', '"kind"')),
    ("a CSV file", _is_csv),
)


def sniff_format(head: bytes) -> str | None:
    """Name the format of a file from its first bytes; None when it looks like Hubble
    JSON or nothing known.

    >>> sniff_format(b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 ...")
    'an AWS VPC flow log'
    >>> sniff_format(b'{"flow": {"verdict": "FORWARDED"}}') is None
    True
    """
    text = head_text(head)
    if isinstance(text, BadHead):
        return text.reason
    # The specific formats first: a foreign file with a few Hubble lines is still foreign.
    found = next((name for name, test in _FORMATS if test(text)), None)
    if found is not None or is_hubble(text):
        return found
    return next((name for name, test in _GENERIC if test(text)), None)


class BadHead(str):
    """Why a file's head is not text (a ``str`` subclass, so it can be told apart)."""

    @property
    def reason(self) -> str:
        return str(self)


def head_text(head: bytes) -> str:
    """The decoded head of a file (gunzipped), or a :class:`BadHead` saying why not."""
    if head[:2] == b"\x1f\x8b":
        head = _gunzip_head(head)
        if not head:
            return BadHead("a gzip file that cannot be decompressed (truncated?)")
    if b"\x00" in head:
        return BadHead("a binary file (not text)")
    text = head.decode("utf-8", errors="replace")
    if "\ufffd" in text[: len(text) - 4]:  # a multi-byte character may be cut at the end
        return BadHead("a binary file (not UTF-8 text)")
    return text


def _gunzip_head(data: bytes) -> bytes:
    """As much of a gzip stream as decompresses (a truncated stream gives its start)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data, SNIFF_BYTES)
    except zlib.error:
        return b""


def read_head(path: str) -> bytes | None:
    """The first :data:`SNIFF_BYTES` of a file; None for stdin or an unreadable file."""
    if path == "-":
        return None
    try:
        with open(path, "rb") as f:
            return f.read(SNIFF_BYTES)
    except OSError:
        return None


def sniff_file(path: str) -> str | None:
    """:func:`sniff_format` of a file's head; None for stdin or an unreadable file."""
    head = read_head(path)
    if head is None:
        return None
    if path.endswith(".gz") and head[:2] != b"\x1f\x8b":
        return "not gzip data despite the .gz name"
    return sniff_format(head)
