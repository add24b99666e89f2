"""The embedded record path (``read_flows``: shadow, tighten, diff) normalizes and resolves
each distinct raw end once; its rows must equal the per-record normalization's.

The reference below is the per-record SQL the engine ran before (``records_of_packets_sql``
then ``resolved_sql`` on every record), kept here as the oracle.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from recommender.flows.hubble import records_of_packets_sql
from recommender.flows.sources import FlowSource
from recommender.inventory.files import read_inventory
from recommender.model import Inventory
from recommender.observe.engines import embedded
from recommender.observe.engines.embedded import EmbeddedEngine
from recommender.semantics.resolve import resolved_sql
from tests.conftest import FIXTURES, ROOT, SAMPLES


class PerRecordEngine(EmbeddedEngine):
    """The engine with every record's ends normalized and resolved one by one."""

    def _store_records(
        self,
        con: duckdb.DuckDBPyConnection,
        packets: str,
        sources: list[FlowSource],
        inventory: Inventory | None,
    ) -> None:
        if inventory is None:
            records = records_of_packets_sql(packets)
        else:
            embedded._register_inventory(con, inventory)
            sql = records_of_packets_sql(self._attributed(packets, None))
            records = resolved_sql(sql, ("src", "dst"), "inv_ip", "inv_pod")
        con.execute(f"CREATE TEMP TABLE netpol_records AS {records}")


FLOWS = [
    ROOT / "data" / "sample" / "flows-train.jsonl.gz",  # rejects, lost_events, node_status
    *sorted((SAMPLES / "hubble").rglob("*.json*")),
    *sorted((SAMPLES / "aws-vpc-flow-logs").glob("*.log")),
    *sorted((SAMPLES / "gcp-vpc-flow-logs").glob("*.json*")),
    *sorted((SAMPLES / "calico").glob("*")),
    *sorted((SAMPLES / "antrea").glob("*.*")),
    *sorted((SAMPLES / "inspektor-gadget").glob("*.json")),
    *sorted((SAMPLES / "flowrecord").glob("*")),
]
INVENTORIES = {
    "none": None,
    "sample": ROOT / "data" / "sample" / "inventory.json",
    "vpc": FIXTURES / "vpc" / "inventory.json",  # IP-only ends attributed by IP and time
}


def _frame(engine: EmbeddedEngine, path: str, inventory: Inventory | None) -> pd.DataFrame:
    table = engine.read_flows([path], inventory)
    frame = table.to_pandas()
    return frame, table.stats


@pytest.mark.parametrize("inv_name", sorted(INVENTORIES))
def test_distinct_end_records_equal_per_record_records(inv_name):
    inv_path = INVENTORIES[inv_name]
    inventory = read_inventory([str(inv_path)]) if inv_path is not None else None
    files = [str(p) for p in FLOWS if p.is_file() and not p.name.endswith(".md")]
    assert len(files) > 20
    rows = 0
    for path in files:
        try:
            want, want_stats = _frame(PerRecordEngine(), path, inventory)
        except Exception as exc:  # a file the readers refuse: refused alike
            with pytest.raises(type(exc)):
                _frame(EmbeddedEngine(), path, inventory)
            continue
        got, got_stats = _frame(EmbeddedEngine(), path, inventory)
        pd.testing.assert_frame_equal(got, want, obj=path)
        assert got_stats == want_stats, path
        rows += len(got)
    assert rows > 10_000  # the comparison saw real records, not empty frames
