"""Fuzz the policy parser: mutated policy files must parse or raise InputError, nothing else.

Each case mutates a valid file (tests/fixtures/policies/mutate.py: scalars, keys,
lines, characters, decoded values), writes it, then runs what ``shadow``, ``diff``
and ``tighten`` run (:func:`load_policies`) and what ``lint`` runs
(:func:`read_policy_docs`, then :func:`lint_docs` against the lint fixture
inventory). Any exception other than :class:`InputError` is a crash; a case
slower than ``--slow`` seconds is counted as a hang. Prints counts.

    .venv/bin/python bench/fuzz_policy.py --cases 10000 --seed 0
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fixtures.policies.mutate import mutate  # noqa: E402

from recommender.errors import InputError  # noqa: E402
from recommender.inventory.files import read_inventory  # noqa: E402
from recommender.lint import lint_docs, read_policy_docs  # noqa: E402
from recommender.model import Inventory  # noqa: E402
from recommender.policy_io.policy_yaml import load_policies  # noqa: E402

INVENTORY = ROOT / "tests" / "fixtures" / "lint" / "inventory.yaml"


def run_case(path: Path, inventory: Inventory) -> tuple[str, str]:
    """Outcome of one file (``ok``, ``input-error``, ``crash:<Type>``) and the traceback."""
    outcome = "ok"
    for step in (
        lambda: load_policies([str(path)]),
        lambda: lint_docs(read_policy_docs([str(path)])[0], inventory, redundancy=False),
    ):
        try:
            step()
        except InputError:
            outcome = "input-error"
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            return f"crash:{type(exc).__name__}", traceback.format_exc()
    return outcome, ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=2.0, help="seconds that count as a hang")
    parser.add_argument("--show", type=int, default=3, help="crashing inputs to print")
    args = parser.parse_args(argv)
    inventory = read_inventory([str(INVENTORY)])
    counts: Counter[str] = Counter()
    shown = 0
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(args.cases):
            rng = random.Random(f"{args.seed}:{case}")
            suffix, text = mutate(rng)
            path = Path(tmp) / f"case{suffix}"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            t0 = time.perf_counter()
            outcome, trace = run_case(path, inventory)
            if time.perf_counter() - t0 > args.slow:
                counts["hang"] += 1
            counts[outcome] += 1
            if outcome.startswith("crash") and shown < args.show:
                shown += 1
                print(f"--- case {case} ({outcome}):\n{text}\n{trace}", file=sys.stderr)
    elapsed = time.perf_counter() - start
    crashes = sum(n for k, n in counts.items() if k.startswith("crash"))
    print(
        f"cases {args.cases}, seed {args.seed}, {elapsed:.1f} s "
        f"({args.cases / elapsed:,.0f} cases/s)"
    )
    for key in sorted(counts):
        print(f"  {key:24} {counts[key]:>7}")
    print(f"crashes {crashes}, hangs {counts['hang']}")
    return 1 if crashes or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
