"""OpenMetrics of a followed shadow run, served over HTTP by ``prometheus_client``.

The names and labels follow what users already query (see docs/metrics.md):

* ``netpol_policy_verdicts_total{action,direction,namespace,workload,policy}``,
  after Hubble's ``hubble_policy_verdicts_total{action,direction,match}`` with
  its workload context labels; ``action`` is ``allow``, ``would_deny``,
  ``unknown`` or ``cni_dropped``. One increment per connection, so the sums
  equal the shadow report's totals (attribution:
  :func:`recommender.shadow.follow.verdict_key`).
* ``netpol_flows_processed_total`` (Hubble ``hubble_flows_processed_total``):
  flow records judged; ``netpol_lost_events_total`` (Hubble
  ``hubble_lost_events_total``): events Hubble reported lost in its
  ``lost_events`` records; ``netpol_rejected_lines_total{reason}``.
* ``netpol_uncovered_pods{direction}``: pods no candidate policy selects.
* ``netpol_rule_last_seen_timestamp_seconds{policy,direction,rule}`` and
  ``netpol_rule_connections_total{...}`` (Calico Enterprise's
  ``cnx_policy_rule_connections{policy,rule_direction,rule_index}``): every
  rule of the candidate policies has a series from the start; 0 = not seen.

Every metric lives in the exporter's own ``CollectorRegistry``, never the
process-global one, so two exporters (or tests) never share counters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from recommender.shadow.follow import Tally, parse_rule_id
from recommender.vocabulary import DIRECTIONS

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

#: Label names of the verdict counter, in order.
VERDICT_LABELS = ("action", "direction", "namespace", "workload", "policy")
RULE_LABELS = ("policy", "direction", "rule")


class ShadowMetrics:
    """The metric families of one followed run, in a private registry.

    Parameters
    ----------
    rule_ids
        Every candidate rule id (``ns/name#ingress[0]``): each gets its series at once,
        so a rule never used shows up as stale instead of missing.
    uncovered
        Pods no policy selects, per direction.
    """

    def __init__(self, rule_ids: Iterable[str], uncovered: Mapping[str, Sequence[str]]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        # The families live in ``_inner``; ``registry`` (what is served) reads them under
        # the lock that :meth:`add` holds, so a scrape never sees half a chunk.
        self._lock = threading.Lock()
        self._inner = CollectorRegistry(auto_describe=True)
        r = self._inner
        self.verdicts = Counter(
            "netpol_policy_verdicts",
            "Observed connections judged by the candidate policies, by outcome and where "
            "it was decided",
            VERDICT_LABELS,
            registry=r,
        )
        self.flows = Counter("netpol_flows_processed", "Flow records judged", registry=r)
        self.lost = Counter(
            "netpol_lost_events", "Events Hubble reported lost (lost_events records)", registry=r
        )
        self.rejected = Counter(
            "netpol_rejected_lines", "Input lines rejected, by reason", ["reason"], registry=r
        )
        self.uncovered = Gauge(
            "netpol_uncovered_pods",
            "Pods no candidate policy selects",
            ["direction"],
            registry=r,
        )
        self.rule_last_seen = Gauge(
            "netpol_rule_last_seen_timestamp_seconds",
            "Time (unix seconds, of the flow) a rule last allowed an observed connection; "
            "0 = not seen",
            RULE_LABELS,
            registry=r,
        )
        self.rule_connections = Counter(
            "netpol_rule_connections", "Connections a rule allowed", RULE_LABELS, registry=r
        )
        self._last_seen: dict[tuple[str, str, str], float] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Locked(self._inner, self._lock))
        self._init_rules(rule_ids)
        for direction in DIRECTIONS:
            self.uncovered.labels(direction).set(len(uncovered.get(direction, ())))

    def _init_rules(self, rule_ids: Iterable[str]) -> None:
        for rid in rule_ids:
            key = parse_rule_id(rid)
            if key is not None:
                self.rule_last_seen.labels(*key).set(0)
                self.rule_connections.labels(*key)

    def add(self, tally: Tally, lost_events: int = 0, rejects: Mapping[str, int] = {}) -> None:  # noqa: B006 -- read only
        """Count one judged chunk: its tally, lost events and rejected lines by reason."""
        with self._lock:
            self.lost.inc(lost_events)
            for reason, n in sorted(rejects.items()):
                self.rejected.labels(reason).inc(n)
            for key, n in sorted(tally.verdicts.items()):
                self.verdicts.labels(*key).inc(n)
            self.flows.inc(tally.records)
            for rule, n in tally.rule_connections.items():
                self.rule_connections.labels(*rule).inc(n)
            for rule, ts in tally.rule_last_seen.items():
                if ts > self._last_seen.get(rule, 0.0):  # flows may come out of order
                    self._last_seen[rule] = ts
                    self.rule_last_seen.labels(*rule).set(ts)

    def exposition(self) -> bytes:
        """The OpenMetrics text of the registry (what a scrape returns)."""
        from prometheus_client.openmetrics.exposition import generate_latest

        return bytes(generate_latest(self.registry))  # type: ignore[no-untyped-call]


class _Locked:
    """A collector that reads another registry while holding ``lock``."""

    def __init__(self, inner: CollectorRegistry, lock: threading.Lock) -> None:
        self.inner = inner
        self.lock = lock

    def collect(self) -> list[Any]:
        with self.lock:
            return list(self.inner.collect())


class MetricsServer:
    """``prometheus_client``'s HTTP server on ``addr:port`` (0 = any free port); stoppable.

    Answers ``/metrics`` in OpenMetrics when the scraper asks for it (Prometheus
    does), else in the Prometheus text format.
    """

    def __init__(self, registry: CollectorRegistry, addr: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(port, addr, registry=registry)
        except OSError as exc:
            from recommender.errors import InputError

            raise InputError(
                None, f"--metrics-addr {addr}:{port}: cannot listen ({exc.strerror or exc})"
            ) from None

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port."""
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def parse_addr(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9000`` for IPv6; ``:9000`` = all interfaces).

    >>> parse_addr("127.0.0.1:9465"), parse_addr("[::1]:0"), parse_addr(":9465")
    (('127.0.0.1', 9465), ('::1', 0), ('0.0.0.0', 9465))
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        from recommender.errors import InputError

        raise InputError(None, f"--metrics-addr {text!r}: expected HOST:PORT (127.0.0.1:9465)")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)
