"""Fuzz property of the inventory reader: any mutation reads, or is one InputError line.

A few hundred hypothesis examples here; ``bench/fuzz_inventory.py`` runs the same
generator for 10k+ cases and counts the outcomes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from recommender.inventory.files import parse_inventory_items
from tests.fixtures.inventory.fuzz import SEED, classify, mutated_inventory

_DIR = Path(tempfile.mkdtemp(prefix="netpol-fuzz-"))


def test_seed_is_a_valid_inventory() -> None:
    inv = parse_inventory_items(SEED["items"], "seed")
    assert (len(inv.pods), len(inv.services), len(inv.nodes)) == (3, 2, 2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=mutated_inventory())
def test_mutated_inventory_reads_or_is_one_input_error(data: bytes) -> None:
    path = _DIR / "inventory.json"
    path.write_bytes(data)
    assert classify(path) in ("ok", "input-error")
