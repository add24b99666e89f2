"""The words every stage shares: identity columns, verdicts, directions, separators.

Declared once, with ``Literal`` types where a value is one of a few words, so a
reader, an engine, the store and a report cannot drift apart (issue 19). Plain
data only: this module imports nothing of the project, and every layer may use it.

>>> IDENTITY_COLUMNS[:3], IDENTITY_COLUMNS[-2:]
(('src_kind', 'src_cluster', 'src_namespace'), ('port', 'protocol'))
>>> ID_SEP == chr(30) and ID_SEP_SQL == "chr(30)"
True
"""

from __future__ import annotations

from typing import Literal

#: What a peer is, as the flow table and observations record it.
PeerKind = Literal["pod", "host", "world", "service", "cluster_infra", "unknown"]
PEER_KINDS: tuple[PeerKind, ...] = ("pod", "host", "world", "service", "cluster_infra", "unknown")

#: The verdict a flow record carries (what the CNI did), as normalized by every reader.
Verdict = Literal["allowed", "denied", "audit", "error", "unknown"]
VERDICTS: tuple[Verdict, ...] = ("allowed", "denied", "audit", "error", "unknown")

#: Besides the verdicts, observations count the connections a CNI dropped *for policy*.
POLICY_DENIED = "policy_denied"

#: The verdict of a policy evaluation (semantics, shadow, diff): an evaluation that
#: cannot decide (a reply whose request was never seen) says ``unknown``.
Decided = Literal["allowed", "denied", "unknown"]
DECIDED: tuple[Decided, ...] = ("allowed", "denied", "unknown")

#: A NetworkPolicy direction (``policyTypes`` in lower case): ingress is judged at
#: the destination, egress at the source.
Direction = Literal["ingress", "egress"]
DIRECTIONS: tuple[Direction, ...] = ("ingress", "egress")

#: Transport protocols a NetworkPolicy port may name (``protocol`` defaults to TCP).
PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")

#: The columns that identify an observation (one edge: who, to whom, on what port),
#: in the order of the observation table and the store.
IDENTITY_COLUMNS: tuple[str, ...] = (
    "src_kind",
    "src_cluster",
    "src_namespace",
    "src_workload",
    "src_labels",  # canonical JSON
    "src_ip",  # only for non-pod peers
    "dst_kind",
    "dst_cluster",
    "dst_namespace",
    "dst_workload",
    "dst_labels",
    "dst_ip",
    "port",
    "protocol",
)

#: Field separator inside the engines' endpoint identity strings: ASCII record
#: separator, which readers refuse in names, labels and IPs (the raw Hubble label
#: string uses ``\\x1f`` and ``\\x01``).
ID_SEP = "\x1e"
#: :data:`ID_SEP` as a SQL expression (DuckDB and Spark both have ``chr``).
ID_SEP_SQL = f"chr({ord(ID_SEP)})"
