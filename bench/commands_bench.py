"""Whole-command benchmark: each pipeline command on one simulated data set, whole
processes, wall clock, CPU and peak RSS, with the bare-engine reference in the same run.

Usage::

    .venv/bin/python -m recommender simulate --topology large:2000 --seed 1 \\
        --flows 1000000 --compresslevel 1 --out DATA
    .venv/bin/python bench/commands_bench.py --data DATA --work WORK
    .venv/bin/python bench/commands_bench.py --data DATA --work WORK2 --tree OTHER_CHECKOUT \\
        --compare WORK                   # "before": another checkout, outputs compared

``DATA`` is a ``netpol simulate`` output (``inventory.json``, ``flows-train.jsonl.gz``,
``flows-fresh.jsonl.gz``). The commands, in order, each reading what the one before
wrote:

* ``bare``: DuckDB ``read_ndjson`` + ``GROUP BY`` over the namespaces, labels, port and
  verdict of ``flows-train`` (the reference of ``bench/ingest_bench.py``, with
  ``ignore_errors``: the simulator writes damaged lines on purpose);
* ``observations``: ``netpol observations --flows flows-train --inventory ... --json``;
* ``recommend``: ``netpol recommend`` on ``flows-train`` -> ``WORK/policies``;
* ``shadow``: ``netpol shadow`` of those policies on ``flows-fresh`` (``--verdicts`` too);
* ``tighten``: ``netpol tighten`` of those policies on ``flows-fresh`` -> ``WORK/tightened``;
* ``diff``: ``netpol diff`` of the recommended and tightened trees with ``flows-fresh``.

Each child runs alone; its figures come from ``os.wait4`` (``ru_maxrss`` is the child's
peak RSS, CPU its user + system time). The load average is printed before and after
each. Results go to ``WORK/figures.json`` and a Markdown table on stdout. With
``--compare``, each output is compared byte for byte with the same file under that
directory (``cmp``-style) and the result printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from ingest_bench import DUCKDB_CHILD  # noqa: E402

#: The reference of bench/ingest_bench.py, skipping the lines that are not JSON (the
#: simulator writes damaged lines on purpose; netpol counts them as rejects).
BARE_CHILD = DUCKDB_CHILD.replace("columns={cols!r})", "columns={cols!r}, ignore_errors=true)")
assert BARE_CHILD != DUCKDB_CHILD

COMMANDS = ("bare", "observations", "recommend", "shadow", "tighten", "diff")
#: Outputs of each command under WORK, compared with ``--compare``.
OUTPUTS = {
    "observations": ["observations.json"],
    "recommend": ["policies", "recommend.json"],
    "shadow": ["shadow.md", "shadow.json", "verdicts.jsonl"],
    "tighten": ["tightened", "tighten.json"],
    "diff": ["diff.json", "diff.md"],
}


def argv_of(name: str, data: Path, work: Path) -> list[str]:
    """The command line of ``name`` (without the interpreter)."""
    inv = ["--inventory", str(data / "inventory.json")]
    train, fresh = str(data / "flows-train.jsonl.gz"), str(data / "flows-fresh.jsonl.gz")
    netpol = ["-m", "recommender"]
    if name == "bare":
        return ["-c", BARE_CHILD, train]
    if name == "observations":
        return [
            *netpol,
            "observations",
            "--flows",
            train,
            *inv,
            "--json",
            str(work / "observations.json"),
            "--force",
        ]
    if name == "recommend":
        return [
            *netpol,
            "recommend",
            "--flows",
            train,
            *inv,
            "--out",
            str(work / "policies"),
            "--json",
            str(work / "recommend.json"),
            "--force",
        ]
    if name == "shadow":
        return [
            *netpol,
            "shadow",
            "--policies",
            str(work / "policies"),
            *inv,
            "--flows",
            fresh,
            "--report",
            str(work / "shadow.md"),
            "--json",
            str(work / "shadow.json"),
            "--verdicts",
            str(work / "verdicts.jsonl"),
            "--force",
        ]
    if name == "tighten":
        return [
            *netpol,
            "tighten",
            "--policies",
            str(work / "policies"),
            *inv,
            "--flows",
            fresh,
            "--out",
            str(work / "tightened"),
            "--json",
            str(work / "tighten.json"),
            "--force",
        ]
    if name == "diff":
        return [
            *netpol,
            "diff",
            str(work / "policies"),
            str(work / "tightened"),
            *inv,
            "--flows",
            fresh,
            "--json",
            str(work / "diff.json"),
            "--markdown",
            str(work / "diff.md"),
            "--force",
        ]
    raise ValueError(name)


def run_child(argv: list[str], tree: Path, log: Path) -> dict[str, float]:
    """Run one child alone; its wall time, CPU, peak RSS (MB) and exit status."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    load = os.getloadavg()[0]
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "rss_mb": round(usage.ru_maxrss / 1024),
        "load_before": round(load, 1),
        "load_after": round(os.getloadavg()[0], 1),
        "status": os.waitstatus_to_exitcode(status),
    }


def same(a: Path, b: Path, rename: tuple[bytes, bytes] = (b"", b"")) -> bool:
    """Byte-identical files, or trees with the same files byte for byte.

    ``rename`` is (this run's work directory, the compared one's): the reports name the
    paths they read and wrote, which is the one difference two work directories may have.
    """
    if a.is_file() or b.is_file():
        if not (a.is_file() and b.is_file()):
            return False
        here = a.read_bytes()
        if rename[0]:
            here = here.replace(rename[0], rename[1])
        return here == b.read_bytes()
    names_a = sorted(p.name for p in a.iterdir())
    names_b = sorted(p.name for p in b.iterdir())
    return names_a == names_b and all(same(a / n, b / n, rename) for n in names_a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path, help="a netpol simulate output")
    parser.add_argument("--work", required=True, type=Path, help="where outputs go")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout to run (default this)")
    parser.add_argument("--only", nargs="+", choices=COMMANDS, default=list(COMMANDS))
    parser.add_argument("--compare", type=Path, help="a WORK of an earlier run: cmp outputs")
    parser.add_argument(
        "--no-run", action="store_true", help="only compare the outputs already in WORK"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    figures_path = args.work / "figures.json"
    figures = json.loads(figures_path.read_text()) if figures_path.exists() else {}
    lines = sum(1 for _ in _lines(args.data / "flows-train.jsonl.gz"))
    print(f"data {args.data} ({lines:,} training lines), tree {args.tree}")
    rename = (
        (str(args.work.resolve()).encode(), str(args.compare.resolve()).encode())
        if args.compare is not None
        else (b"", b"")
    )
    for name in args.only:
        if args.no_run:
            fig = figures[name]
        else:
            log = args.work / f"{name}.log"
            fig = run_child(argv_of(name, args.data, args.work), args.tree, log)
        if args.compare is not None and name in OUTPUTS:
            fig["identical"] = all(
                same(args.work / o, args.compare / o, rename) for o in OUTPUTS[name]
            )
        figures[name] = fig
        print(name, json.dumps(fig), flush=True)
        if fig["status"] != 0:
            sys.exit(f"{name} failed; see {args.work / (name + '.log')}")
    figures_path.write_text(json.dumps(figures, indent=1, sort_keys=True) + "\n")
    print(
        "\n| command | wall s | CPU s | peak RSS MB | load | identical |"
        "\n|---|---:|---:|---:|---|---|"
    )
    for name in args.only:
        f = figures[name]
        print(
            f"| {name} | {f['wall_s']} | {f['cpu_s']} | {f['rss_mb']} | "
            f"{f['load_before']}-{f['load_after']} | {f.get('identical', '')} |"
        )


def _lines(path: Path):  # type: ignore[no-untyped-def]
    import gzip

    with gzip.open(path, "rb") as fh:
        yield from fh


if __name__ == "__main__":
    main()
