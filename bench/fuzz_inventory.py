"""Fuzz the inventory reader: N mutated inventories, counted by how the read ended.

Usage::

    PYTHONPATH=. python bench/fuzz_inventory.py --cases 10000 [--seed 0] [--save DIR]

Each case is one file drawn by ``tests/fixtures/inventory/fuzz.py`` (the valid
``api-defaults.json`` list, mutated as a tree and sometimes damaged as text,
rendered as JSON or YAML). A read must end as ``ok`` (and then every name and
label passes the API's rules) or ``input-error`` (one line); anything else is a
crash, counted by exception type, and with ``--save`` its input is kept.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fixtures.inventory.fuzz import classify, mutated_inventory  # noqa: E402


def run(cases: int, random_seed: int, save: Path | None) -> collections.Counter[str]:
    """Draw ``cases`` inventories and count the outcomes."""
    counts: collections.Counter[str] = collections.Counter()
    work = Path(tempfile.mkdtemp(prefix="netpol-fuzz-"))

    @seed(random_seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=mutated_inventory())
    def one(data: bytes) -> None:
        path = work / "inventory.json"
        path.write_bytes(data)
        outcome = classify(path)
        counts[outcome] += 1
        if save is not None and outcome.startswith("crash"):
            save.mkdir(parents=True, exist_ok=True)
            (save / f"{outcome[6:]}-{counts[outcome]}.inv").write_bytes(data)

    one()
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="keep the inputs of crashes here")
    args = parser.parse_args()
    start = time.perf_counter()
    counts = run(args.cases, args.seed, args.save)
    elapsed = time.perf_counter() - start
    crashes = {k: v for k, v in counts.items() if k.startswith("crash")}
    total = sum(counts.values())
    per_case = 1000 * elapsed / max(total, 1)
    print(
        f"cases {total}  ok {counts['ok']}  input-error {counts['input-error']}  "
        f"crashes {sum(crashes.values())}  ({elapsed:.0f} s, {per_case:.1f} ms/case)"
    )
    for kind, n in sorted(crashes.items()):
        print(f"  {kind}: {n}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
