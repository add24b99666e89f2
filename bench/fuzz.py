"""Mutation fuzzer for every reader and parser: crashes, hangs, wrong exit codes, lost records.

Usage (from the checkout)::

    .venv/bin/python bench/fuzz.py --n 100000 --seed 1            # every target
    .venv/bin/python bench/fuzz.py --target store --n 2000 --seed 7

Targets and what counts as a failure:

* ``hubble``: mutated Hubble JSON lines, many per file, through the embedded
  ingest engine (``EmbeddedEngine.aggregate``). Every line must be accounted
  for: ``lines == flow_records + rejected + non-flow lines``, and ``lines``
  equals the lines in the file. A batch that raises anything but a
  ``RecommenderError`` is a crash; its lines are bisected (within a budget)
  to find the lines that crash it.
* ``aws``, ``gcp``, ``calico``, ``flowrecord``, ``antrea-json``, ``antrea-csv``,
  ``gadget``: the same for each flow format,
  read with ``--format`` (so a damaged head cannot make sniffing fall back to
  Hubble). Corpora: the samples under tests/samples plus synthetic valid lines
  over every field the reader uses. AWS and FlowRecord CSV files name their
  fields on the first line: each batch is one layout (a header, or none for
  AWS's default and all-fields formats, and lines of it), and one batch in ten
  gets its header mutated or dropped (counted). Space- and comma-separated lines
  get field-level mutations (:data:`FIELD_SWAPS`, and JSON labels inside CSV
  quotes mutated as trees). Every line target also fails a batch whose counted
  reject reasons or samples are not one line each.
* ``inventory``: mutated kubectl List JSON through ``load_inventory``.
* ``policy``: mutated NetworkPolicy YAML (incl. duplicate keys and YAML 1.1
  scalars) through ``load_policies``.
* ``store``: mutated and truncated store files (and a mutated WAL beside
  them), opened in-process as every store command opens them
  (``store.db.connect``) with every row of every table read in one query: the
  result must equal the intact store's (for a damaged WAL: with or without the
  WAL's commits), else be refused with one line naming the file; a read that
  differs silently is a failure. The CLI sample (``recommend --store``) covers
  ``read_store_observations`` and the exit codes.

A crash is any exception other than a :class:`RecommenderError` subclass, or
the worker process dying (a segfault or abort in native code). A hang is an
input that takes longer than ``--timeout`` (5 s; for a Hubble batch, 5 s or 10x
the unmutated batch's time, whichever is larger). Each target also sends
``--cli-sample`` inputs through ``recommender.cli.parser.main`` and counts exit codes
other than 0, 2 and 3 as wrong. Inputs run in a worker process so a native
crash or a hang cannot take the fuzzer down; it is restarted.

Everything is seeded: the same ``--seed`` and ``--n`` give the same inputs.
Reproducers of the first few crashes per target are written to ``--out``
(default ``bench/work/fuzz``, git-ignored).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import multiprocessing as mp
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXIT_OK = (0, 2, 3)
#: Examples kept per crash kind, and reproducer files per target.
MAX_REPRODUCERS = 10

# ---------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------

TOKENS: tuple[bytes, ...] = (
    b'"',
    b"\\",
    b"\n",
    b"\r",
    b"\x00",
    b"\t",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"'",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-1",
    b"99999999999999999999999999",
    b"1e309",
    b"-0",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    "é".encode(),
    "\u202e".encode(),
    "\U0001f600".encode(),
    b"\xff\xfe",
    b"\xed\xa0\x80",
    b"\xc0\x80",
    b"\\u0000",
    b"\\ud800",
    b'\\"',
    b'k8s:app=a","role":"admin',
)

#: Values a JSON/YAML node may be swapped for.
SWAPS: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63) - 1,
    10**30,
    "",
    "x" * 300,
    [],
    {},
    [1, "a"],
    {"a": 1},
    'a"b',
    "a\\b",
    "a\nb",
    "a\x00b",
    'k8s:app=client","role":"admin',
    "-0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "0000-00-00T00:00:00Z",
    "1:20",
    "on",
    "0x10",
    "0o17",
    "\u202eevil",
    "\ufffd",
)

YAML_SCALARS: tuple[bytes, ...] = (
    b"on",
    b"off",
    b"yes",
    b"no",
    b"1:20",
    b"017",
    b"0o17",
    b"0x1F",
    b"~",
    b"1e3",
    b".inf",
    b"!!binary aGk=",
    b"!!python/object:os.system",
    b"&a [*a]",
    b"*undefined",
    b"!!set {a}",
    b"2001-12-14",
    b"- x",
    b"? x",
    b"|",
    b">",
    b"'",
    b'"',
    b"\t",
    b"%YAML 1.1",
)


#: Damage inserted into a string, shared by the byte-level and the tree-level
#: mutations (one table, so both try the same quotes, escapes and separators).
DAMAGE: tuple[str, ...] = ('"', "\\", "\n", "\r", "\x00", "=", ",", ":", "é", '","x":"', "\u2028")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One byte-level mutation: flip, truncate, insert a token, delete or repeat a span."""
    if not data:
        return rng.choice(TOKENS)
    op = rng.randrange(6)
    i = rng.randrange(len(data) + 1)
    if op == 0:  # flip bits in a few bytes
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(out))
            out[j] ^= 1 << rng.randrange(8)
        return bytes(out)
    if op == 1:
        return data[:i]
    if op == 2:
        token = rng.choice(TOKENS) if rng.random() < 0.8 else rng.choice(DAMAGE).encode()
        return data[:i] + token + data[i:]
    j = min(len(data), i + rng.randint(1, 64))
    if op == 3:
        return data[:i] + data[j:]
    if op == 4:
        return data[:j] + data[i:j] * rng.randint(2, 50) + data[j:]
    return data[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 8))) + data[i:]


def _nodes(obj: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _nodes(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nodes(v, (*path, i))


def mutate_tree(obj: Any, rng: random.Random) -> Any:
    """One structural mutation of parsed JSON/YAML: delete a field, swap a value's type,
    damage a string, duplicate a list item. Mutates ``obj`` in place and returns it."""
    nodes = [(p, v) for p, v in _nodes(obj) if p]
    if not nodes:
        return rng.choice(SWAPS)
    path, value = rng.choice(nodes)
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    op = rng.randrange(4)
    if op == 0:
        del parent[last]
    elif op == 1 or not isinstance(value, str | list):
        parent[last] = rng.choice(SWAPS)
    elif isinstance(value, str):
        k = rng.randrange(len(value) + 1)
        parent[last] = value[:k] + rng.choice(DAMAGE) + value[k:]
    elif value:
        value.append(rng.choice(value))
    return obj


def mutate_json_text(text: bytes, rng: random.Random) -> bytes:
    """A structural mutation (60%) or a byte-level one."""
    if rng.random() < 0.6:
        try:
            obj = json.loads(text)
        except ValueError:
            return mutate_bytes(text, rng)
        dumped = json.dumps(mutate_tree(obj, rng), ensure_ascii=rng.random() < 0.5)
        return dumped.encode("utf-8", "surrogatepass")
    return mutate_bytes(text, rng)


def mutate_yaml_text(text: bytes, rng: random.Random) -> bytes:
    """Duplicate a line (a duplicate key), swap a scalar for a YAML 1.1 one, mutate the
    tree, or mutate bytes."""
    lines = text.splitlines(keepends=True)
    op = rng.randrange(4)
    if op == 0 and lines:
        i = rng.randrange(len(lines))
        return b"".join(lines[: i + 1] + lines[i:])
    if op == 1 and lines:
        i = rng.randrange(len(lines))
        head, sep, _ = lines[i].partition(b": ")
        if sep:
            lines[i] = head + sep + rng.choice(YAML_SCALARS) + b"\n"
            return b"".join(lines)
    if op == 2:
        import yaml

        # libyaml when built in: the pure-Python loader and dumper were most of the
        # policy target's time (about 2 of its 2.2 ms per input).
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        try:
            docs = list(yaml.load_all(text, Loader=loader))
            docs = [mutate_tree(d, rng) if d is not None else d for d in docs]
            dumped = yaml.dump_all(docs, Dumper=dumper, allow_unicode=True)
            return dumped.encode("utf-8", "surrogatepass")
        except (yaml.YAMLError, ValueError, TypeError):
            pass
    return mutate_bytes(text, rng)


def mutate_n(
    data: bytes, rng: random.Random, one: Callable[[bytes, random.Random], bytes], most: int = 3
) -> bytes:
    for _ in range(rng.randint(1, most)):
        try:
            data = one(data, rng)
        except RecursionError:  # a self-referencing YAML alias: mutate its bytes instead
            data = mutate_bytes(data, rng)
    return data


#: Values a field of a text record (an AWS VPC line, a FlowRecord CSV line) may be
#: swapped for: numbers at and beyond each range, the AWS keywords, addresses, times.
FIELD_SWAPS: tuple[bytes, ...] = (
    b"-",
    b"",
    b"0",
    b"-1",
    b"+5",
    b"007",
    b"1e3",
    b"0x10",
    b"65535",
    b"65536",
    b"255",
    b"256",
    b"4611686018427387904",
    b"4611686018427387905",
    b"18446744073709551616",
    b"99999999999999999999999999",
    b"253402300799",
    b"253402300800",
    b"-62135596801",
    b"NaN",
    b"ACCEPT",
    b"REJECT",
    b"NODATA",
    b"SKIPDATA",
    b"OK",
    b"IPv4",
    b"IPv6",
    b"egress",
    b"ingress",
    b"::1",
    b"2001:db8::1",
    b"::ffff:10.0.0.1",
    b"10.0.0.256",
    b"1.2.3",
    b"eni-0",
    b"true",
    b"false",
    b"TCP",
    b"tcp",
    b"IP:255",
    b"IP:256",
    b"ICMPv6",
    b"pod",
    b"host",
    b"world",
    b"service",
    b"cluster_infra",
    b"denied",
    b"audit",
    b"1970-01-01T00:00:00Z",
    b"0001-01-01T00:00:00Z",
    b"0000-12-31T00:00:00Z",
    b"9999-12-31T23:59:59Z",
    b"10000-01-01T00:00:00Z",
    b"2024-02-30T10:00:00Z",
    b"2024-05-01T10:00:00+25:00",
    b"2024-05-01 10:00:00",
    b'"',
    b'""',
    b'"a,b"',
    b'"{""app"":""web""}"',
    b'"{""app"":1}"',
    b'"{""app"":""bad value!""}"',
    b'"[""a.example.com""]"',
    b'"[1]"',
    b"a;b",
    b"\xff",
    "é".encode(),
    "\u202e".encode(),
)


def mutate_fields(sep: bytes) -> Callable[[bytes, random.Random], bytes]:
    """A mutation of a ``sep``-separated record: swap a field for a :data:`FIELD_SWAPS`
    value or another field of the line, delete, duplicate or damage a field (70%), or
    mutate its bytes."""

    def mutate(line: bytes, rng: random.Random) -> bytes:
        fields = line.split(sep)
        if rng.random() < 0.3 or not line:
            return mutate_bytes(line, rng)
        i = rng.randrange(len(fields))
        op = rng.randrange(5)
        if op == 0:
            fields[i] = rng.choice(FIELD_SWAPS)
        elif op == 1:
            fields[i] = rng.choice(fields)
        elif op == 2:
            del fields[i]
        elif op == 3:
            fields.insert(i, fields[i])
        else:
            k = rng.randrange(len(fields[i]) + 1)
            damage = rng.choice(DAMAGE).encode()
            fields[i] = fields[i][:k] + damage + fields[i][k:]
        return sep.join(fields)

    return mutate


def mutate_csv_line(line: bytes, rng: random.Random) -> bytes:
    """A tree mutation of a JSON value inside a quoted CSV field (labels, names), written
    back with CSV quoting (25%), else :func:`mutate_fields` with ``,``."""
    import csv

    if rng.random() < 0.25:
        try:
            fields = next(csv.reader([line.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            fields = []
        json_at = [i for i, f in enumerate(fields) if f[:1] in ("{", "[")]
        if json_at:
            i = rng.choice(json_at)
            with contextlib.suppress(ValueError):
                value = mutate_tree(json.loads(fields[i]), rng)
                fields[i] = json.dumps(value, ensure_ascii=rng.random() < 0.5)
                sink = io.StringIO()
                csv.writer(sink, lineterminator="").writerow(fields)
                return sink.getvalue().encode("utf-8", "surrogatepass")
    return mutate_fields(b",")(line, rng)


# ---------------------------------------------------------------------------
# Seed corpora
# ---------------------------------------------------------------------------


def hubble_corpus() -> list[bytes]:
    """Valid and odd Hubble lines: the bundled sample and the samples the tests read."""
    with gzip.open(ROOT / "data" / "sample" / "flows-train.jsonl.gz", "rb") as fh:
        lines = fh.read().splitlines()[:3000]
    for path in sorted((ROOT / "tests" / "samples" / "hubble").rglob("*")):
        if path.is_file() and path.stat().st_size < 2_000_000:
            lines += [ln for ln in path.read_bytes().splitlines() if ln.startswith(b"{")][:200]
    return [ln for ln in lines if ln.strip()]


def _layout(header: str, lines: list[str]) -> bytes:
    """A seed of a format with a header line: the header, then its valid lines
    (``header`` empty: a header-less format)."""
    return "\n".join([header, *lines]).encode()


def _sample_layouts(folder: str, pattern: str) -> list[bytes]:
    """Each sample file as a layout: its first line is the header unless it is a record."""
    out = []
    for path in sorted((ROOT / "tests" / "samples" / folder).glob(pattern)):
        rows = [ln for ln in path.read_text().splitlines() if ln.strip()]
        if rows and rows[0][:1].isdigit():
            out.append(_layout("", rows))
        elif rows:
            out.append(_layout(rows[0], rows[1:]))
    return out


def aws_corpus() -> list[bytes]:
    """Layouts of AWS VPC flow logs (FORMATS.md 2.5): each sample file (with its header
    line, or the default / all-fields header-less format), a CloudWatch ``${field}``
    format string, and synthetic lines over every field the reader uses."""
    from recommender.flows.aws import ALL_FIELDS

    out = _sample_layouts("aws-vpc-flow-logs", "*.log")
    fmt = (
        "version vpc-id srcaddr dstaddr srcport dstport protocol packets bytes start end action "
        "log-status pkt-srcaddr pkt-dstaddr flow-direction tcp-flags type interface-id"
    )
    rows = [
        "5 vpc-1 10.0.1.5 10.0.2.9 40312 5432 6 10 840 1714557600 1714557660 ACCEPT OK "
        "10.0.1.5 10.0.2.9 egress 2 IPv4 eni-0a1",
        "5 vpc-1 10.0.2.9 10.0.1.5 5432 40312 6 9 700 1714557600 1714557660 ACCEPT OK "
        "10.0.2.9 10.0.1.5 ingress 18 IPv4 eni-0a1",
        "5 vpc-1 192.168.0.4 10.0.1.7 51000 53 17 1 60 1714557600 1714557601 REJECT OK "
        "10.0.1.9 10.0.1.7 ingress 0 IPv4 eni-0b2",
        "5 vpc-1 2001:db8::5 2001:db8::9 0 0 58 2 128 1714557600 1714557602 ACCEPT OK "
        "- - egress - IPv6 eni-0b2",
        "5 vpc-1 - - - - - - - 1714557600 1714557660 - NODATA - - - - - eni-0c3",
        "5 vpc-1 - - - - - - - 1714557600 1714557660 - SKIPDATA - - - - - eni-0c3",
        "5 vpc-1 10.0.3.3 10.0.4.4 443 33000 6 3 180 1714557600 1714557600 ACCEPT OK "
        "10.0.3.3 10.0.4.4 - 19 IPv4 eni-0d4",
    ]
    out.append(_layout(" ".join("${" + f + "}" for f in fmt.split()), rows))
    out.append(_layout(fmt, rows))
    out.append(
        _layout(
            "version srcaddr dstaddr srcport dstport protocol action log-status",
            ["2 10.0.0.1 10.0.0.2 40000 80 6 ACCEPT OK", "2 10.0.0.2 10.0.0.1 80 40000 6 - OK"],
        )
    )
    full = [
        "5 123456789012 eni-1 10.0.1.5 10.0.2.9 40312 5432 6 10 840 1714557600 1714557660 "
        "ACCEPT OK vpc-1 subnet-1 i-1 2 IPv4 10.0.1.5 10.0.2.9 us-east-1 use1-az1 - - - - "
        "egress 1",
        "5 123456789012 eni-2 172.16.0.1 10.0.2.9 0 0 1 1 84 1714557600 1714557601 REJECT OK "
        "vpc-1 subnet-2 - 0 IPv4 - - us-east-1 use1-az2 wavelength wlid-1 AMAZON - ingress 8",
    ]
    assert all(len(r.split()) == len(ALL_FIELDS) for r in full)
    out.append(_layout("", full))
    return out


def gcp_corpus() -> list[bytes]:
    """GCP VPC flow log entries (FORMATS.md 2.6): the sample lines, and synthetic
    entries (GKE pod and service details, a bare payload, string numbers, a gateway
    reporter, UDP, ICMP, IPv6)."""
    path = ROOT / "tests" / "samples" / "gcp-vpc-flow-logs"
    lines = [ln for p in sorted(path.glob("*.ndjson")) for ln in p.read_bytes().splitlines()]
    gke_web = {
        "cluster": {"cluster_name": "prod", "cluster_location": "us-east1"},
        "pod": {
            "pod_name": "web-5d8f7c9b6d-abcde",
            "pod_namespace": "shop",
            "pod_workload": {"workload_name": "web", "workload_type": "DEPLOYMENT"},
        },
    }
    gke_db = {
        "pod": {"pod_name": "db-0", "pod_namespace": "shop"},
        "service": [{"service_name": "db", "service_namespace": "shop"}],
    }
    variants: list[tuple[str, str, str, Any, Any, Any, dict[str, Any]]] = [
        ("SRC", "10.4.0.7", "10.4.1.9", 41000, 5432, 6, {"src_gke_details": gke_web}),
        ("DEST", "10.4.0.7", "10.4.1.9", 41000, 5432, 6, {"dest_gke_details": gke_db}),
        ("SRC", "10.0.0.1", "10.0.0.2", "40001", "53", "17", {}),
        ("SRC_GATEWAY", "10.0.0.1", "10.0.0.2", 40001, 443, 6, {}),
        ("DEST_GATEWAY", "10.0.0.1", "10.0.0.2", 40001, 443, 6, {}),
        ("DEST", "2001:db8::1", "2001:db8::2", 0, 0, 58, {}),
        ("SRC", "10.0.0.1", "8.8.8.8", 0, 0, 1, {"src_instance": {"vm_name": "vm-1"}}),
    ]
    for reporter, src, dst, sport, dport, proto, extra in variants:
        payload = {
            "connection": {
                "src_ip": src,
                "src_port": sport,
                "dest_ip": dst,
                "dest_port": dport,
                "protocol": proto,
            },
            "reporter": reporter,
            "start_time": "2024-05-01T10:00:00.123456789Z",
            "end_time": "2024-05-01T10:00:05Z",
            "bytes_sent": "100",
            "packets_sent": "2",
            **extra,
        }
        entry = {"jsonPayload": payload, "logName": "p/logs/compute.googleapis.com%2Fvpc_flows"}
        lines.append(json.dumps(entry).encode())
        if reporter == "SRC":
            lines.append(json.dumps(payload).encode())  # a bare payload
    return [ln for ln in lines if ln.strip()]


def calico_corpus() -> list[bytes]:
    """Calico flow-log records as JSON lines (FORMATS.md 2.2.1): the documented
    record (compacted) and variants (aggregated names without IPs, deny, host and
    network peers, UDP, ICMP, IPv6, a service and domains)."""
    path = ROOT / "tests" / "samples" / "calico" / "flowlog-doc-example-no-aggregation.json"
    doc = json.loads(path.read_text())
    aggregated = dict(doc, source_ip=None, dest_ip=None, source_port=None)
    aggregated.update(source_name="-", dest_name="-")
    variants = [
        doc,
        dict(doc, reporter="src"),
        aggregated,
        dict(aggregated, reporter="src"),
        dict(aggregated, reporter="src", action="deny"),
        dict(doc, action="deny", reporter="src"),
        dict(doc, source_type="hep", dest_type="net", dest_namespace="-"),
        dict(doc, source_type="ns", dest_type="wep", proto="udp", dest_port=53),
        dict(doc, proto="icmp", source_port=None, dest_port=None),
        dict(doc, source_ip="fd00::1", dest_ip="fd00::2", proto="6"),
        dict(doc, dest_service_name="nginx", dest_service_namespace="policy-demo"),
        dict(doc, dest_domains=["api.example.com"], dest_type="net"),
    ]
    return [json.dumps(v).encode() for v in variants]


def flowrecord_corpus() -> list[bytes]:
    """Layouts of FlowRecord CSV tables (FORMATS.md 1.1, ``docs/formats.md``): the
    sample table, every column netpol reads, the required minimum, another order."""
    from recommender.flows.flowrecord import KNOWN_COLUMNS

    out = _sample_layouts("flowrecord", "*.csv")
    values = {
        "time_start": "2024-05-01T10:00:00Z",
        "time_end": "2024-05-01T11:00:05.5+01:00",
        "source_format": "hubble_jsonpb",
        "observer": "node-a",
        "reporter": "both",
        "src_kind": "pod",
        "src_cluster": "prod",
        "src_namespace": "shop",
        "src_pod": "web-1",
        "src_workload_kind": "Deployment",
        "src_workload_name": "web",
        "src_labels": '"{""app"":""web""}"',
        "src_service_account": "web",
        "src_ip": "10.0.1.5",
        "src_port": "40312",
        "dst_kind": "pod",
        "dst_cluster": "prod",
        "dst_namespace": "shop",
        "dst_pod": "db-0",
        "dst_workload_kind": "StatefulSet",
        "dst_workload_name": "db",
        "dst_labels": '"{""app"":""db"",""tier"":""data""}"',
        "dst_service_account": "db",
        "dst_ip": "10.0.2.9",
        "dst_port": "5432",
        "protocol": "TCP",
        "icmp_type": "",
        "ip_version": "4",
        "dst_service_namespace": "shop",
        "dst_service_name": "db",
        "dst_names": '"[""db.shop.svc.cluster.local""]"',
        "verdict": "allowed",
        "drop_reason": "",
        "is_policy_drop": "false",
        "policies": "shop/allow-web;shop/deny-all",
        "is_reply": "",
        "observation_point": "TO_ENDPOINT",
        "event_type": "4",
        "conn_count": "1",
        "raw_ref": "x.json:1",
        "src_ns_labels": '"{""team"":""a""}"',
        "dst_ns_labels": '"{""team"":""b""}"',
        "icmp_code": "",
        "event_count": "3",
        "packets": "10",
        "bytes": "840",
        "packets_rev": "9",
        "bytes_rev": "700",
        "l7_protocol": "http",
        "l7_detail": "GET /",
    }
    assert set(values) == set(KNOWN_COLUMNS)
    cols = list(KNOWN_COLUMNS)
    changes: list[dict[str, str]] = [
        {},
        {"is_reply": "true", "src_port": "5432", "dst_port": "40312"},
        {"protocol": "ICMPv4", "icmp_type": "8", "src_port": "", "dst_port": "", "icmp_code": "0"},
        {"src_kind": "world", "src_namespace": "", "src_pod": "", "src_labels": ""},
        {"dst_kind": "cluster_infra", "dst_namespace": "", "dst_ip": "10.96.0.1"},
        {"verdict": "denied", "is_policy_drop": "true", "drop_reason": "POLICY_DENIED"},
        {"time_start": "1714557600", "time_end": "1714557601", "protocol": "IP:47"},
        {"src_ip": "fd00::1", "dst_ip": "fd00::2", "ip_version": "6", "protocol": "17"},
    ]
    out.append(
        _layout(",".join(cols), [",".join({**values, **c}[k] for k in cols) for c in changes])
    )
    minimal = ["time_start", "protocol", "src_ip", "dst_ip", "dst_port"]
    out.append(
        _layout(
            ",".join(minimal),
            ["2024-05-01T10:00:00Z,UDP,10.0.0.1,10.0.0.2,53", "1714557600,tcp,10.0.0.1,10.0.0.3,"],
        )
    )
    shuffled = ["protocol", "dst_namespace", "src_namespace", "dst_port", "time_start", "is_reply"]
    out.append(
        _layout(
            ",".join(shuffled),
            ["TCP,shop,front,8080,2024-05-01T10:00:00,false", "6,shop,front,,1714557600,"],
        )
    )
    return out


def antrea_json_corpus() -> list[bytes]:
    """Antrea flow records as JSON lines (FORMATS.md 2.3): the ``antctl get flowrecords
    -o json`` example record (compacted) and variants (labels, ``"{}"``, flowType 3 and 4
    without a pod, every rule action and policy type, a Service port name, UDP, ICMP,
    IPv6, pretty action names, a ClickHouse ``JSONEachRow`` row)."""
    path = ROOT / "tests" / "samples" / "antrea" / "antctl-get-flowrecords-doc-example.json"
    doc = json.loads(path.read_text())[0]
    named = dict(
        doc,
        sourcePodName="web-5d8f7c9b6d-abcde",
        sourcePodNamespace="shop",
        sourcePodLabels='{"app":"web","pod-template-hash":"5d8f7c9b6d"}',
        destinationPodLabels="{}",
        destinationServicePortName="kube-system/kube-dns:dns",
    )
    variants = [
        doc,
        named,
        dict(doc, destinationPodName="", destinationPodNamespace="", flowType=3),
        dict(doc, sourcePodName="", sourcePodNamespace="", flowType=4),
        dict(doc, flowType=1, sourceNodeName="", destinationNodeName=""),
        dict(
            doc,
            ingressNetworkPolicyRuleAction=2,
            ingressNetworkPolicyName="deny-all",
            ingressNetworkPolicyNamespace="kube-system",
            ingressNetworkPolicyType=1,
        ),
        dict(
            doc,
            egressNetworkPolicyRuleAction=3,
            egressNetworkPolicyName="acnp-reject",
            egressNetworkPolicyType=3,
        ),
        dict(doc, ingressNetworkPolicyRuleAction=1, ingressNetworkPolicyType=2),
        dict(doc, ingressNetworkPolicyRuleAction="Allow", egressNetworkPolicyRuleAction="Drop"),
        dict(doc, protocolIdentifier=6, destinationTransportPort=8080, tcpState="ESTABLISHED"),
        dict(doc, protocolIdentifier=1, sourceTransportPort=0, destinationTransportPort=0),
        {
            **{k: v for k, v in doc.items() if "IPv4" not in k},
            "sourceIPv6Address": "fd00:10:244::5",
            "destinationIPv6Address": "fd00:10:244::9",
            "protocolIdentifier": 58,
        },
        {
            "flowStartSeconds": "2024-05-01 10:00:00",
            "flowEndSeconds": "2024-05-01 10:00:30",
            "sourceIP": "10.10.0.5",
            "destinationIP": "10.10.1.9",
            "sourceTransportPort": 41000,
            "destinationTransportPort": 8080,
            "protocolIdentifier": 6,
            "sourcePodName": "a",
            "sourcePodNamespace": "shop",
            "destinationPodName": "b",
            "destinationPodNamespace": "shop",
            "sourcePodLabels": '{"app":"a"}',
            "destinationPodLabels": '{"app":"b"}',
            "flowType": 1,
        },
    ]
    return [json.dumps(v).encode() for v in variants]


def antrea_csv_corpus() -> list[bytes]:
    """Flow-logger CSV lines of the Antrea Flow Aggregator (no header, the 30 columns of
    ``antrea.CSV_COLUMNS``): the test fixture's two lines (pretty and raw) and variants
    (allowed, every action, no rule, UDP, ICMP, IPv6, no pod names, a CRLF line)."""
    from recommender.flows.antrea import CSV_COLUMNS

    path = ROOT / "tests" / "samples" / "antrea" / "flowlogger-csv-test-fixture.csv"
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    raw = lines[1].split(",")
    assert len(raw) == len(CSV_COLUMNS)

    def changed(**values: str) -> str:
        fields = list(raw)
        for name, value in values.items():
            fields[CSV_COLUMNS.index(name)] = value
        return ",".join(fields)

    lines += [
        changed(ingressNetworkPolicyRuleAction="1", egressNetworkPolicyRuleAction="0"),
        changed(ingressNetworkPolicyRuleAction="0", egressNetworkPolicyRuleAction="3"),
        changed(ingressNetworkPolicyRuleAction="", egressNetworkPolicyRuleAction=""),
        changed(ingressNetworkPolicyRuleAction="Allow", egressNetworkPolicyRuleAction="Reject"),
        changed(protocolIdentifier="17", destinationTransportPort="53"),
        changed(protocolIdentifier="ICMP", sourceTransportPort="0", destinationTransportPort="0"),
        changed(sourceIP="fd00:10:244::5", destinationIP="fd00:10:244::9"),
        changed(sourcePodName="", sourcePodNamespace="", sourceNodeName=""),
        changed(destinationPodName="", destinationPodNamespace="", destinationNodeName=""),
        changed(ingressNetworkPolicyType="AntreaNetworkPolicy", egressNetworkPolicyType="4"),
        changed() + "\r",
    ]
    return [ln.encode() for ln in lines]


def gadget_corpus() -> list[bytes]:
    """Inspektor Gadget network events as JSON lines (FORMATS.md 2.4): the kubeipresolver
    fragment with a timestamp (UDP to a Service, oriented by the port rule), trace_tcp
    connect / accept / close events of the kubenameresolver fragment's pod (``timestamp``
    with an offset or ``timestamp_raw``), an error, a host-network pod, ``k8s.kind`` pod,
    svc and raw ends, ``proto_raw`` only, IPv6, and undecidable events (TCP without
    ``type``, UDP to a high port)."""
    folder = ROOT / "tests" / "samples" / "inspektor-gadget"
    ip_doc = json.loads((folder / "kubeipresolver-doc-fragment.json").read_text())
    name_doc = json.loads((folder / "kubenameresolver-doc-fragment.json").read_text())
    stamp = "2025-03-01T10:00:00.5+01:00"
    src = {"addr": "10.244.0.29", "port": 40000, "proto": "TCP", "version": 4}
    svc = {"kind": "svc", "name": "kubernetes", "namespace": "default", "labels": ""}
    dst = {"addr": "10.96.0.1", "port": 443, "proto": "TCP", "version": 4, "k8s": svc}

    def tcp(kind: str, **changes: Any) -> dict[str, Any]:
        event = dict(name_doc, type=kind, timestamp_raw="1740823200000000000", src=src, dst=dst)
        return dict(event, **changes)

    pod = {"kind": "pod", "name": "db-0", "namespace": "shop", "labels": "app=db,tier=data"}
    raw = {"kind": "raw", "name": "", "namespace": "", "labels": ""}
    udp_high = json.loads(json.dumps(ip_doc))
    udp_high["dst"]["port"] = 5353
    v6 = {"addr": "fd00:10:244::9", "port": 8080, "proto_raw": 6, "version": 6}
    events = [
        dict(ip_doc, timestamp=stamp),
        dict(udp_high, timestamp=stamp),
        tcp("connect"),
        tcp("accept"),
        tcp("close"),
        tcp("connect", error="ECONNREFUSED"),
        tcp("connect", k8s=dict(name_doc["k8s"], hostnetwork=True)),
        tcp("connect", dst=dict(dst, k8s=pod), timestamp=stamp),
        tcp("accept", dst=dict(dst, addr="192.168.1.7", k8s=raw)),
        tcp("connect", src=dict(v6, addr="fd00:10:244::5", port=41000), dst=v6),
        {k: v for k, v in tcp("connect").items() if k != "type"},
    ]
    return [json.dumps(e).encode() for e in events]


def inventory_corpus() -> list[bytes]:
    """Small kubectl List documents: slices of the sample inventory and the test files."""
    out = []
    items = json.loads((ROOT / "data" / "sample" / "inventory.json").read_text())["items"]
    kinds: dict[str, list[Any]] = {}
    for item in items:
        kinds.setdefault(item.get("kind", ""), []).append(item)
    for i in range(20):
        picked = [v[i % len(v)] for v in kinds.values() if v]
        out.append(json.dumps({"apiVersion": "v1", "kind": "List", "items": picked}).encode())
    for path in sorted((ROOT / "tests" / "fixtures" / "inventory").glob("*.json")):
        out.append(path.read_bytes())
    sample = ROOT / "tests" / "samples" / "k8s-inventory" / "sre-ai-agent-2025-sample-pod-list.json"
    out.append(sample.read_bytes())
    return out


def policy_corpus() -> list[bytes]:
    """Every policy fixture of the suite (one or more documents each)."""
    paths = sorted((ROOT / "tests" / "fixtures" / "policies").glob("*.yaml"))
    paths += sorted((ROOT / "tests" / "fixtures" / "tighten").glob("*.yaml"))
    return [p.read_bytes() for p in paths if p.stat().st_size < 200_000]


def build_store(work: Path) -> tuple[bytes, bytes]:
    """A small store (300 sample lines, two appends) and a WAL of one more commit."""
    from recommender.observe.factory import get_engine
    from recommender.observe.store import append_observations

    work.mkdir(parents=True, exist_ok=True)
    flows = work / "seed.jsonl"
    with gzip.open(ROOT / "data" / "sample" / "flows-train.jsonl.gz", "rb") as fh:
        flows.write_bytes(b"".join(fh.read().splitlines(keepends=True)[:300]))
    store = work / "seed.duckdb"
    with contextlib.suppress(FileNotFoundError):
        store.unlink()
    result = get_engine().aggregate([str(flows)], bucket="1h")
    append_observations(str(store), result.observations, result.stats, sources=[str(flows)])
    data = store.read_bytes()
    wal = _make_wal(store)
    return data, wal


def _make_wal(store: Path) -> bytes:
    """Commit one more row and die before the close would checkpoint: the WAL stays."""
    import subprocess

    code = (
        "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); "
        "c.execute(\"UPDATE meta SET value = value WHERE key = 'format'\"); "
        "c.execute(\"INSERT INTO sources VALUES (99, 'x', 1, 'd')\"); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(store)], check=True)
    wal = Path(str(store) + ".wal")
    return wal.read_bytes() if wal.exists() else b""


# ---------------------------------------------------------------------------
# The worker: runs one input, reports what happened
# ---------------------------------------------------------------------------


def _outcome(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    from recommender.errors import RecommenderError

    start = time.monotonic()
    try:
        out = fn()
        out["kind"] = "ok"
    except RecommenderError as exc:
        out = {"kind": "refused", "message": str(exc)[:200]}
    except RecursionError as exc:
        out = {"kind": "crash", "error": f"RecursionError: {str(exc)[:200]}"}
    except Exception as exc:  # noqa: BLE001 - that is what a fuzzer looks for
        out = {"kind": "crash", "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    out["seconds"] = time.monotonic() - start
    return out


def _check_hubble(path: str, flow_format: str | None = None) -> dict[str, Any]:
    """Every line of a flow file read by the embedded engine (``flow_format`` as
    ``--format``; None: sniffed): the line count and the lines accounted for."""
    from recommender.observe.engines.embedded import EmbeddedEngine

    engine = EmbeddedEngine()
    engine.flow_format = flow_format
    stats = engine.aggregate([path]).stats
    accounted = stats.flow_records + stats.rejected + sum(stats.non_flow.values())
    # Every counted reason and every sample is printed on one line of the summary.
    texts = [*stats.rejects, *stats.reject_samples]
    multiline = [t for t in texts if "\n" in t or "\r" in t]
    return {"lines": stats.lines, "accounted": accounted, "multiline": multiline[:1]}


def _check_inventory(path: str) -> dict[str, Any]:
    from recommender.inventory.files import load_inventory

    load = load_inventory([path])
    return {"pods": len(load.inventory.pods)}


def _check_policy(path: str) -> dict[str, Any]:
    from recommender.policy_io.policy_yaml import load_policies

    return {"policies": len(load_policies([path]).policies)}


#: The store's tables (``recommender/observe/store/db.py`` ``_SCHEMA``), each read whole.
STORE_TABLES = ("appends", "meta", "observations", "sources")
#: Rows and a digest of every value of each table: one query, so reading every block.
_STORE_DIGEST_SQL = " UNION ALL ".join(
    f"SELECT '{t}' AS name, count(*) AS n, md5(coalesce(string_agg(CAST(x AS VARCHAR), "
    f"chr(10) ORDER BY CAST(x AS VARCHAR)), '')) AS digest FROM {t} x"
    for t in STORE_TABLES
)


def _check_store(path: str) -> dict[str, Any]:
    """Open a (damaged) store as every store command does (``store.db.connect``: the
    header, meta and version checks, damage as a one-line ``InputError``) and read every
    row of every table: ``digest`` is compared with the intact store's by the caller."""
    from recommender.observe.store.db import connect

    with connect(path) as con:
        rows = con.execute(f"SELECT * FROM ({_STORE_DIGEST_SQL}) ORDER BY name").fetchall()
    return {"digest": repr(rows), "rows": {name: int(n) for name, n, _ in rows}}


def _cli_argv(target: str, path: str, work: str) -> list[str]:
    out = os.path.join(work, "cli-out")
    shutil.rmtree(out, ignore_errors=True)
    return REGISTRY[target].cli(path, out)


def _run_cli(target: str, path: str, work: str) -> dict[str, Any]:
    from recommender.cli.parser import main

    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = main(_cli_argv(target, path, work))
    text = sink.getvalue()
    return {"exit": code, "internal": "internal error" in text, "tail": text[-300:]}


@dataclass(frozen=True)
class Target:
    """One fuzz target: how to seed, mutate, check and run it through the CLI.

    ``lines``: a line-per-record reader, fuzzed in batches of mutated lines with
    every line accounted for (``check`` returns ``lines`` and ``accounted``);
    otherwise each input is one whole file. ``header``: a format whose first line
    names the fields (AWS VPC, CSV): each corpus item is a layout (a header line,
    empty for none, then valid lines of it) and each batch is one layout's header
    followed by mutated lines of that layout; the header itself is mutated or
    dropped in :data:`HEADER_DAMAGE` of the batches (counted).
    """

    suffix: str
    corpus: Callable[[], list[bytes]]
    mutate: Callable[[bytes, random.Random], bytes]
    check: Callable[[str], dict[str, Any]]
    cli: Callable[[str, str], list[str]]
    lines: bool = False
    header: bool = False


def _inventory_cli(path: str, out: str) -> list[str]:
    deny = str(ROOT / "tests" / "fixtures" / "policies" / "deny-all-ingress.yaml")
    return ["lint", deny, "--inventory", path, "--fail-on", "never"]


_INVENTORY = str(ROOT / "data" / "sample" / "inventory.json")


def _flows_cli(flow_format: str) -> Callable[[str, str], list[str]]:
    """``observations`` over one file read as ``flow_format`` (as the check reads it: a
    mutated line in the head, e.g. invalid UTF-8, would make sniffing fall back to Hubble)."""
    return lambda p, o: [
        "observations",
        "--flows",
        p,
        "--format",
        flow_format,
        "--json",
        o,
        "--force",
    ]


#: The targets. A new flow reader (Calico, Antrea, AWS ... in recommender/flows/) is one
#: more entry: a ``lines=True`` Target whose corpus is valid lines of that format and
#: whose check runs the engine over a file of them (``_check_hubble`` works for any
#: format the engine sniffs), with the same ``observations --flows`` CLI argv.
REGISTRY: dict[str, Target] = {
    "hubble": Target(
        ".jsonl",
        lambda: hubble_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_hubble(p),
        lambda p, o: ["observations", "--flows", p, "--json", o, "--force"],
        lines=True,
    ),
    "aws": Target(
        ".log",
        lambda: aws_corpus(),
        mutate_fields(b" "),
        lambda p: _check_hubble(p, "aws_vpc"),
        _flows_cli("aws_vpc"),
        lines=True,
        header=True,
    ),
    "gcp": Target(
        ".ndjson",
        lambda: gcp_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_hubble(p, "gcp_vpc"),
        _flows_cli("gcp_vpc"),
        lines=True,
    ),
    "calico": Target(
        ".log",
        lambda: calico_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_hubble(p, "calico"),
        _flows_cli("calico"),
        lines=True,
    ),
    "flowrecord": Target(
        ".csv",
        lambda: flowrecord_corpus(),
        lambda d, r: mutate_csv_line(d, r),
        lambda p: _check_hubble(p, "flowrecord"),
        _flows_cli("flowrecord"),
        lines=True,
        header=True,
    ),
    "inventory": Target(
        ".json",
        lambda: inventory_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_inventory(p),
        _inventory_cli,
    ),
    "policy": Target(
        ".yaml",
        lambda: policy_corpus(),
        lambda d, r: mutate_yaml_text(d, r),
        lambda p: _check_policy(p),
        lambda p, o: ["lint", p, "--inventory", _INVENTORY, "--fail-on", "never"],
    ),
    "store": Target(
        ".duckdb",
        lambda: [],  # built by build_store; inputs from _store_inputs
        lambda d, r: mutate_bytes(d, r),
        lambda p: _check_store(p),
        lambda p, o: ["recommend", "--store", p, "--inventory", _INVENTORY, "--out", o],
    ),
    "antrea-json": Target(
        ".json",
        lambda: antrea_json_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_hubble(p, "antrea_antctl"),
        _flows_cli("antrea_antctl"),
        lines=True,
    ),
    "antrea-csv": Target(
        ".csv",
        lambda: antrea_csv_corpus(),
        lambda d, r: mutate_csv_line(d, r),
        lambda p: _check_hubble(p, "antrea_csv"),
        _flows_cli("antrea_csv"),
        lines=True,
    ),
    "gadget": Target(
        ".json",
        lambda: gadget_corpus(),
        lambda d, r: mutate_json_text(d, r),
        lambda p: _check_hubble(p, "inspektor_gadget"),
        _flows_cli("inspektor_gadget"),
        lines=True,
    ),
}


def _write_input(work: str, target: str, data: bytes, wal: bytes | None) -> str:
    suffix = REGISTRY[target].suffix
    path = os.path.join(work, f"input{suffix}")
    for stale in (path, path + ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(stale)
    Path(path).write_bytes(data)
    if wal:
        Path(path + ".wal").write_bytes(wal)
    return path


def serve(conn: Any, work: str) -> None:
    """Worker loop: ``(target, mode, data, wal)`` in, an outcome dict out."""
    os.makedirs(work, exist_ok=True)
    sys.setrecursionlimit(5000)
    import recommender.cli.parser  # noqa: F401 - the imports, before the first timed input
    import recommender.observe.engines.embedded  # noqa: F401
    import recommender.observe.store  # noqa: F401

    while True:
        try:
            target, mode, data, wal = conn.recv()
        except EOFError:
            return
        if mode == "ping":
            conn.send({"kind": "ok"})
            continue
        path = _write_input(work, target, data, wal)
        if mode == "cli":
            result = _outcome(lambda t=target, p=path: _run_cli(t, p, work))
        else:
            result = _outcome(lambda t=target, p=path: REGISTRY[t].check(p))
        conn.send(result)


class Worker:
    """A spawned worker process; restarted after a death or a hang."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ctx = mp.get_context("spawn")
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=serve, args=(child, str(self.work)), daemon=True)
        self.proc.start()
        child.close()
        self.conn.send(("", "ping", b"", None))
        if not self.conn.poll(300):
            raise SystemExit("fuzz: the worker did not start")
        self.conn.recv()

    def run(
        self, target: str, mode: str, data: bytes, wal: bytes | None, timeout: float
    ) -> dict[str, Any]:
        """The outcome; ``hang`` after ``timeout`` s, ``died`` when the worker died."""
        start = time.monotonic()
        self.conn.send((target, mode, data, wal))
        if self.conn.poll(timeout):
            try:
                result: dict[str, Any] = self.conn.recv()
                return result
            except EOFError:
                pass
        elapsed = time.monotonic() - start
        alive = self.proc.is_alive()
        self.proc.kill()
        self.proc.join()
        code = self.proc.exitcode
        self.restarts += 1
        self._start()
        if alive:
            return {"kind": "hang", "seconds": elapsed}
        return {"kind": "crash", "error": f"worker died (exit code {code})", "seconds": elapsed}

    def close(self) -> None:
        self.conn.close()
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()


# ---------------------------------------------------------------------------
# Driving a target
# ---------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts of one target."""

    target: str
    inputs: int = 0
    ok: int = 0
    refused: int = 0
    crashes: int = 0
    crash_kinds: Counter[str] = field(default_factory=Counter)
    hangs: int = 0
    lost: int = 0
    miscounted_batches: int = 0
    crashed_batches: int = 0
    lines_in_crashed_batches: int = 0
    damaged_headers: int = 0
    wrong_reads: int = 0
    multiline_rejects: int = 0
    bad_refusals: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    cli_inputs: int = 0
    wrong_exit: int = 0
    exit_codes: Counter[int] = field(default_factory=Counter)
    seconds: float = 0.0
    cli_seconds: float = 0.0
    reproducers: list[str] = field(default_factory=list)

    def crash(self, error: str, data: bytes, out: Path) -> None:
        kind = error.split(":")[0] if not error.startswith("worker died") else error
        self.crash_kinds[kind] += 1
        self.keep(error, data, out)

    def keep(self, error: str, data: bytes, out: Path) -> None:
        """Write a reproducer of a failure (the first :data:`MAX_REPRODUCERS`)."""
        if len(self.reproducers) < MAX_REPRODUCERS:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{self.target}-crash-{len(self.reproducers) + 1}"
            path.write_bytes(data)
            self.reproducers.append(f"{path.name}: {error[:160]}")


def _single_inputs(target: str, corpus: list[bytes], rng: random.Random, n: int) -> Iterator[bytes]:
    one = REGISTRY[target].mutate
    for _ in range(n):
        yield mutate_n(rng.choice(corpus), rng, one)


def _store_inputs(
    seed: tuple[bytes, bytes], rng: random.Random, n: int
) -> Iterator[tuple[bytes, bytes | None]]:
    data, wal = seed
    for _ in range(n):
        op = rng.randrange(5)
        if op == 0:  # truncate anywhere, often inside the header blocks
            cut = rng.choice((rng.randrange(len(data)), rng.randrange(min(len(data), 12288))))
            yield data[:cut], None
        elif op == 1:  # a few flipped bytes, half of the time in the headers
            out = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                j = rng.randrange(12288 if rng.random() < 0.5 else len(out))
                out[j] ^= 1 << rng.randrange(8)
            yield bytes(out), None
        elif op == 2:  # a zeroed or garbage 4 KiB page
            out = bytearray(data)
            page = rng.randrange(len(out) // 4096) * 4096
            fill = bytes(4096) if rng.random() < 0.5 else rng.randbytes(4096)
            out[page : page + 4096] = fill
            yield bytes(out), None
        elif op == 3:  # a damaged WAL beside an intact file
            yield data, mutate_n(wal, rng, mutate_bytes) if wal else rng.randbytes(64)
        else:  # appended garbage
            yield data + rng.randbytes(rng.randint(1, 5000)), None


def run_single(
    tally: Tally, worker: Worker, inputs: Iterator[Any], timeout: float, out: Path
) -> None:
    for item in inputs:
        data, wal = item if isinstance(item, tuple) else (item, None)
        result = worker.run(tally.target, "check", data, wal, timeout)
        tally.inputs += 1
        _count(tally, result, data, timeout, out)


def run_store(
    tally: Tally,
    worker: Worker,
    seed: tuple[bytes, bytes],
    inputs: Iterator[tuple[bytes, bytes | None]],
    args: argparse.Namespace,
) -> None:
    """Damaged stores: each reads exactly as the intact store (with or without the
    WAL's commits, for a damaged WAL) or is refused with one line naming the file."""
    data, wal = seed
    intact = worker.run("store", "check", data, None, 300)
    replayed = worker.run("store", "check", data, wal, 300) if wal else intact
    if intact["kind"] != "ok" or replayed["kind"] != "ok":
        raise SystemExit(f"fuzz: the intact store does not read: {intact} {replayed}")
    if intact["rows"] == replayed["rows"]:
        raise SystemExit("fuzz: the WAL of the seed store adds no row")
    for store, store_wal in inputs:
        result = worker.run("store", "check", store, store_wal, args.timeout)
        tally.inputs += 1
        _count(tally, result, store, args.timeout, args.out)
        if result["kind"] == "ok":
            allowed = {intact["digest"]} | ({replayed["digest"]} if store_wal else set())
            if result["digest"] not in allowed:
                tally.wrong_reads += 1
                tally.keep("wrong read: differs from the intact store", store, args.out)
        elif result["kind"] == "refused":
            _count_refusal(tally, result["message"], args.out, store)


#: What a refused store's message says after the path, by class.
_REFUSALS = (
    "damaged store",
    "not a readable netpol store",
    "an empty store",
    "a DuckDB file, but not a netpol store",
    "store format version",
    "the store is busy",
)


def _count_refusal(tally: Tally, message: str, out: Path, data: bytes) -> None:
    """Count a refusal by class; one on several lines or not naming the store is wrong."""
    where, _, reason = message.partition(": ")
    kind = next((k for k in _REFUSALS if reason.startswith(k)), "other: " + reason[:60])
    tally.refusals[kind] += 1
    if "\n" in message or "input.duckdb" not in where:
        tally.bad_refusals += 1
        tally.keep(f"refusal not one line naming the store: {message[:120]}", data, out)


def _count(tally: Tally, result: dict[str, Any], data: bytes, timeout: float, out: Path) -> None:
    kind = result["kind"]
    if kind == "hang" or result.get("seconds", 0) > timeout:
        tally.hangs += 1
    if kind == "ok":
        tally.ok += 1
    elif kind == "refused":
        tally.refused += 1
    elif kind == "crash":
        tally.crashes += 1
        tally.crash(result["error"], data, out)


def run_hubble(
    tally: Tally,
    worker: Worker,
    corpus: list[bytes],
    rng: random.Random,
    n: int,
    batch: int,
    timeout: float,
    isolate: int,
    out: Path,
) -> None:
    """Batches of mutated lines; a crashed batch is bisected within ``isolate`` calls."""
    head, lines = batch_lines(tally.target, corpus, rng, batch, mutate=False)
    clean = b"\n".join(head + lines) + b"\n"
    base = worker.run(tally.target, "check", clean, None, 300)
    limit = max(timeout, 10 * base.get("seconds", 0))
    budget = [isolate]
    done = 0
    while done < n:
        size = min(batch, n - done)
        head, lines = batch_lines(tally.target, corpus, rng, size, tally=tally)
        done += size
        tally.inputs += size
        _hubble_batch(tally, worker, head, lines, limit, budget, out)


#: Share of the batches of a ``header`` target whose header line is damaged: mutated
#: (four in five) or dropped.
HEADER_DAMAGE = 0.1


def batch_lines(
    target: str,
    corpus: list[bytes],
    rng: random.Random,
    size: int,
    *,
    mutate: bool = True,
    tally: Tally | None = None,
) -> tuple[list[bytes], list[bytes]]:
    """One batch of ``target``: its header line (a list of none or one) and ``size``
    lines, mutated unless ``mutate`` is false. A damaged header is counted in ``tally``."""
    spec = REGISTRY[target]

    def line(seeds: list[bytes]) -> bytes:
        seed = rng.choice(seeds)
        return mutate_n(seed, rng, spec.mutate) if mutate else seed

    if not spec.header:
        return [], [line(corpus) for _ in range(size)]
    header, *rows = rng.choice(corpus).split(b"\n")
    lines = [line(rows) for _ in range(size)]
    if header and mutate and rng.random() < HEADER_DAMAGE:
        if tally is not None:
            tally.damaged_headers += 1
        header = mutate_n(header, rng, spec.mutate) if rng.random() < 0.8 else b""
    return ([header] if header else []), lines


def _file_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


def _hubble_batch(
    tally: Tally,
    worker: Worker,
    head: list[bytes],
    lines: list[bytes],
    limit: float,
    budget: list[int],
    out: Path,
) -> None:
    """Run one batch (``head``: its header line, if any) and count its lines."""
    data = b"\n".join(head + lines) + b"\n"
    result = worker.run(tally.target, "check", data, None, limit)
    if result["kind"] == "hang" or result.get("seconds", 0) > limit:
        tally.hangs += 1
    if result["kind"] == "ok":
        tally.ok += len(lines)
        expected = _file_lines(data)
        lost = expected - result["accounted"]
        if lost or result["lines"] != expected:
            tally.miscounted_batches += 1
            tally.lost += max(lost, 0)
        if result.get("multiline"):
            tally.multiline_rejects += 1
            tally.keep(f"reject not one line: {result['multiline'][0][:120]!r}", data, out)
    elif result["kind"] == "refused":
        tally.refused += len(lines)
    elif result["kind"] == "crash":
        tally.crashed_batches += 1
        tally.lines_in_crashed_batches += len(lines)
        _isolate(tally, worker, head, lines, result["error"], limit, budget, out)


def _isolate(
    tally: Tally,
    worker: Worker,
    head: list[bytes],
    lines: list[bytes],
    error: str,
    limit: float,
    budget: list[int],
    out: Path,
) -> None:
    """Bisect a crashing batch down to single lines (each after the batch's header line
    ``head``), spending at most ``budget`` calls."""
    if len(lines) == 1:
        tally.crashes += 1
        tally.crash(error, b"\n".join(head + lines) + b"\n", out)
        return
    if budget[0] <= 0:
        return
    half = len(lines) // 2
    for part in (lines[:half], lines[half:]):
        if budget[0] <= 0:
            return
        budget[0] -= 1
        data = b"\n".join(head + part) + b"\n"
        result = worker.run(tally.target, "check", data, None, limit)
        if result["kind"] == "crash":
            _isolate(tally, worker, head, part, result["error"], limit, budget, out)


def run_cli(tally: Tally, worker: Worker, inputs: Iterator[Any], timeout: float) -> None:
    start = time.monotonic()
    for item in inputs:
        data, wal = item if isinstance(item, tuple) else (item, None)
        result = worker.run(tally.target, "cli", data, wal, timeout * 6)
        tally.cli_inputs += 1
        code = result.get("exit", "crash" if result["kind"] != "hang" else "hang")
        tally.exit_codes[code] += 1
        if code not in EXIT_OK:
            tally.wrong_exit += 1
    tally.cli_seconds = time.monotonic() - start


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def fuzz_target(target: str, args: argparse.Namespace, work: Path) -> Tally:
    rng = random.Random(f"{args.seed}:{target}")
    tally = Tally(target)
    worker = Worker(work / f"worker-{target}")
    start = time.monotonic()  # after the worker's imports
    try:
        if target == "store":
            seed = build_store(work / "store-seed")
            run_store(tally, worker, seed, _store_inputs(seed, rng, args.n), args)
            run_cli(tally, worker, _store_inputs(seed, rng, args.cli_sample), args.timeout)
        else:
            corpus = REGISTRY[target].corpus()
            if REGISTRY[target].lines:
                run_hubble(
                    tally,
                    worker,
                    corpus,
                    rng,
                    args.n,
                    args.batch,
                    args.timeout,
                    args.isolate,
                    args.out,
                )
                cli_inputs: Iterator[bytes] = (
                    b"\n".join(sum(batch_lines(target, corpus, rng, 20), [])) + b"\n"
                    for _ in range(args.cli_sample)
                )
            else:
                run_single(
                    tally,
                    worker,
                    _single_inputs(target, corpus, rng, args.n),
                    args.timeout,
                    args.out,
                )
                cli_inputs = _single_inputs(target, corpus, rng, args.cli_sample)
            run_cli(tally, worker, cli_inputs, args.timeout)
    finally:
        worker.close()
    tally.seconds = time.monotonic() - start - tally.cli_seconds
    return tally


def format_tally(t: Tally, n: int) -> str:
    per = t.seconds / max(t.inputs, 1)
    lines = [
        f"{t.target}: {t.inputs:,} inputs in {t.seconds:,.0f} s ({per * 1000:.2f} ms/input; "
        f"100k projected {per * 100_000 / 60:,.0f} min)",
        f"  ok {t.ok:,}, refused (RecommenderError) {t.refused:,}, crashes {t.crashes:,}, "
        f"hangs {t.hangs:,}, records lost {t.lost:,}"
        if REGISTRY[t.target].lines
        else f"  ok {t.ok:,}, refused (RecommenderError) {t.refused:,}, crashes {t.crashes:,}, "
        f"hangs {t.hangs:,}, records lost n/a (whole-file reader)",
    ]
    if REGISTRY[t.target].lines:
        lines.append(
            f"  batches: {t.crashed_batches:,} crashed ({t.lines_in_crashed_batches:,}"
            f" lines, all lost to the run), {t.miscounted_batches:,} with lines not "
            f"accounted for, {t.multiline_rejects:,} with a reject reason or sample not on "
            f"one line; crashing lines isolated: {t.crashes:,}"
        )
    if REGISTRY[t.target].header:
        lines.append(f"  batches with a damaged (mutated or dropped) header: {t.damaged_headers:,}")
    if t.crash_kinds:
        kinds = ", ".join(f"{k} {v}" for k, v in t.crash_kinds.most_common())
        lines.append(f"  crash kinds: {kinds}")
    if t.target == "store":
        kinds = ", ".join(f"{k} {v:,}" for k, v in t.refusals.most_common())
        lines.append(
            f"  reads differing from the intact store {t.wrong_reads:,}; refusals not one "
            f"line naming the store {t.bad_refusals:,}; refusals: {kinds}"
        )
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(t.exit_codes.items(), key=str))
    lines.append(
        f"  CLI sample: {t.cli_inputs} inputs in {t.cli_seconds:,.0f} s, wrong exit "
        f"codes {t.wrong_exit} (exit codes {codes})"
    )
    lines += [f"  reproducer {r}" for r in t.reproducers[:5]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=(*REGISTRY, "all"), default="all")
    parser.add_argument("--n", type=int, default=100_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--cli-sample",
        type=int,
        default=200,
        help="inputs per target through recommender.cli.parser.main",
    )
    parser.add_argument("--batch", type=int, default=2000, help="Hubble lines per file")
    parser.add_argument("--timeout", type=float, default=5.0, help="hang limit per input (s)")
    parser.add_argument(
        "--isolate", type=int, default=60, help="calls spent bisecting crashed Hubble batches"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "work" / "fuzz", help="reproducers of crashes"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = tuple(REGISTRY) if args.target == "all" else (args.target,)
    print(
        f"fuzz: seed {args.seed}, {args.n:,} inputs per target, CLI sample "
        f"{args.cli_sample}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    failed = False
    with tempfile.TemporaryDirectory(prefix="netpol-fuzz-") as work:
        for target in targets:
            tally = fuzz_target(target, args, Path(work))
            print(format_tally(tally, args.n), flush=True)
            failed |= bool(
                tally.crashes
                or tally.crashed_batches
                or tally.hangs
                or tally.lost
                or tally.wrong_exit
                or tally.miscounted_batches
                or tally.wrong_reads
                or tally.multiline_rejects
                or tally.bad_refusals
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
