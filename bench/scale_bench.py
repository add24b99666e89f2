"""Scale benchmark (issue 7): embedded vs Spark aggregation, and how every stage grows.

Usage::

    .venv/bin/python bench/scale_bench.py --size 200 --flows 1000000 --keep
    .venv/bin/python bench/scale_bench.py --size 2000 --flows 10000000 --keep \\
        --engines duckdb,embedded,spark --stages recommend,shadow,tighten
    .venv/bin/python bench/scale_bench.py --plot            # bench/scale.png from --out

Data: ``netpol simulate --topology large:SIZE --seed 1 --flows N --compresslevel 1``
into ``bench/work/scale/lSIZE-TAG/`` (gitignored; ``--keep`` reuses it). The
training file is gunzipped once to ``flows-train.jsonl``; every aggregation
(bare DuckDB, embedded, Spark) and ``netpol recommend`` read that same plain
file (plain text is splittable, so Spark gets one task per 128 MB block).
``shadow`` and ``tighten`` replay the fresh window (``flows-fresh.jsonl.gz``)
against the policies ``recommend`` wrote.

Measurements (each one a child process):

* ``duckdb``: bare DuckDB ``read_ndjson`` + ``count(*) GROUP BY`` (the reference
  of ``bench/ingest_bench.py``, same query);
* ``embedded``: ``EmbeddedEngine().aggregate([plain], inventory)``;
* ``spark``: ``SparkEngine(master, conf).aggregate([plain], inventory)``; the
  session (JVM) is started first and timed apart;
* ``recommend``/``shadow``/``tighten``: the CLI commands, end to end (they read
  and aggregate their flow file with the embedded engine themselves).

Peak RSS is the peak of the summed RSS of the child's whole process tree
(the Spark JVM is a child of the Python child), sampled from ``/proc`` every
0.5 s (``ru_maxrss`` would give only the largest single process). Before each
run the script waits (up to ``--max-wait``) for the 1-minute load average to
drop below ``--max-load`` and records the load.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / "work" / "scale"
NETPOL = [sys.executable, str(ROOT / "cli.py")]
PAGE = os.sysconf("SC_PAGE_SIZE")
STAGES = ("recommend", "shadow", "tighten")
ENGINES = ("duckdb", "embedded", "spark")

# Each child prints one JSON line last: {"seconds": ..., ...}.
EMBEDDED_CHILD = """
import json, sys, time
from recommender.observe.engines.embedded import EmbeddedEngine
from recommender.inventory.files import read_inventory
inv = read_inventory([sys.argv[2]])
t = time.perf_counter()
r = EmbeddedEngine().aggregate([sys.argv[1]], inv)
dt = time.perf_counter() - t
from bench_digest import digest
print(json.dumps({"seconds": dt, "observations": len(r.observations),
                  "connections": r.stats.connections, "flow_records": r.stats.flow_records,
                  "lines": r.stats.lines, "digest": digest(r.observations)}))
"""

SPARK_CHILD = """
import json, sys, time
from recommender.observe.engines.spark import SparkEngine
from recommender.inventory.files import read_inventory
inv = read_inventory([sys.argv[2]])
conf = json.loads(sys.argv[4])
t0 = time.perf_counter()
engine = SparkEngine(master=sys.argv[3], conf=conf)
engine.session()
t = time.perf_counter()
r = engine.aggregate([sys.argv[1]], inv)
dt = time.perf_counter() - t
from bench_digest import digest
print(json.dumps({"seconds": dt, "session_seconds": t - t0, "observations": len(r.observations),
                  "connections": r.stats.connections, "flow_records": r.stats.flow_records,
                  "lines": r.stats.lines, "digest": digest(r.observations)}))
"""

DUCKDB_CHILD = """
import json, sys, time, duckdb
con = duckdb.connect(config={'memory_limit': '512MB'})
con.execute('SET enable_progress_bar = false')
ep = 'STRUCT(namespace VARCHAR, labels VARCHAR[])'
cols = {'flow': f'STRUCT(source {ep}, destination {ep}, '
                'l4 STRUCT(TCP STRUCT(destination_port INTEGER)), verdict VARCHAR)'}
t = time.perf_counter()
n = con.execute(
    'SELECT count(*) FROM (SELECT flow.source.namespace, flow.source.labels, '
    'flow.destination.namespace, flow.destination.labels, flow.l4.TCP.destination_port, '
    f'flow.verdict, count(*) FROM read_ndjson(?, columns={cols!r}, ignore_errors=true) '
    'GROUP BY ALL)',
    [sys.argv[1]]).fetchone()
print(json.dumps({"seconds": time.perf_counter() - t, "groups": n[0]}))
"""

DIGEST = '''
"""Order-independent digest of an observation table (engines must agree)."""
import hashlib


def digest(frame):
    text = frame.astype(str)
    text = text.sort_values(list(text.columns)).to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
'''


def tag(flows: int) -> str:
    """``1000000`` -> ``1m``, ``200000`` -> ``200k``."""
    if flows % 1_000_000 == 0:
        return f"{flows // 1_000_000}m"
    return f"{flows // 1000}k" if flows % 1000 == 0 else str(flows)


def tree_rss(root: int) -> int:
    """Summed RSS in bytes of ``root`` and all its descendants (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(parents.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Wait until the 1-minute load is below ``max_load`` (20 s polls); return it."""
    deadline = time.monotonic() + max_wait
    load = os.getloadavg()[0]
    while load >= max_load and time.monotonic() < deadline:
        print(f"  load {load:.2f} >= {max_load}, waiting", flush=True)
        time.sleep(20)
        load = os.getloadavg()[0]
    return load


def run_child(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``argv``; wall time, peak tree RSS, the JSON of its last stdout line."""
    peak = [0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(proc.pid))
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # the child's own group: it and its JVM
        out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    result: dict[str, Any] = {
        "wall_seconds": wall,
        "peak_rss_mb": peak[0] / 2**20,
        "returncode": proc.returncode,
        "timed_out": timed_out,
    }
    lines = out.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        result.update(json.loads(lines[-1]))
    else:
        result["stdout_tail"] = out[-1500:]
    if proc.returncode not in (0, 3) or timed_out:
        result["stderr_tail"] = err[-3000:]
    return result


def prepare(size: int, flows: int, keep: bool) -> Path:
    """Simulate ``large:SIZE`` with about ``flows`` training lines; gunzip the train file."""
    out = WORK / f"l{size}-{tag(flows)}"
    if not (keep and (out / "truth.json").exists()):
        t = time.perf_counter()
        subprocess.run(
            NETPOL
            + [
                "simulate",
                "--topology",
                f"large:{size}",
                "--seed",
                "1",
                "--flows",
                str(flows),
                "--compresslevel",
                "1",
                "--out",
                str(out),
                "--force",
            ],
            cwd=ROOT,
            check=True,
        )
        if not (out / "truth.json").exists():
            sys.exit(f"netpol simulate wrote no {out}/truth.json")
        print(f"simulated {out} in {time.perf_counter() - t:.0f} s", flush=True)
    plain = out / "flows-train.jsonl"
    if not plain.exists():
        part = plain.with_suffix(".part")
        with gzip.open(out / "flows-train.jsonl.gz", "rb") as src, part.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        part.rename(plain)
    (WORK / "bench_digest.py").write_text(DIGEST)
    return out


def commands(data: Path, name: str, master: str, conf: dict[str, str]) -> list[str]:
    """The argv of measurement ``name`` on ``data``."""
    plain, inv = str(data / "flows-train.jsonl"), str(data / "inventory.json")
    fresh, pol = str(data / "flows-fresh.jsonl.gz"), str(data / "policies")
    py = [sys.executable, "-c"]
    return {
        "duckdb": py + [DUCKDB_CHILD, plain],
        "embedded": py + [EMBEDDED_CHILD, plain, inv],
        "spark": py + [SPARK_CHILD, plain, inv, master, json.dumps(conf)],
        "recommend": NETPOL
        + ["recommend", "--flows", plain, "--inventory", inv, "--out", pol, "--force"],
        "shadow": NETPOL
        + [
            "shadow",
            "--policies",
            pol,
            "--inventory",
            inv,
            "--flows",
            fresh,
            "--report",
            str(data / "shadow.md"),
            "--json",
            str(data / "shadow.json"),
            "--force",
        ],
        "tighten": NETPOL
        + [
            "tighten",
            "--policies",
            pol,
            "--inventory",
            inv,
            "--flows",
            fresh,
            "--out",
            str(data / "tightened"),
            "--force",
        ],
    }[name]


def load_results(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def save_result(path: Path, row: dict[str, Any]) -> None:
    """Replace the row with the same (size, flows, name), keep the rest, sorted."""
    rows = [
        r
        for r in load_results(path)
        if (r["size"], r["flows"], r["name"]) != (row["size"], row["flows"], row["name"])
    ]
    rows.append(row)
    rows.sort(key=lambda r: (r["size"], r["flows"], r["name"]))
    path.write_text(json.dumps(rows, indent=1) + "\n")


def measure(args: argparse.Namespace, data: Path, name: str) -> dict[str, Any]:
    conf = {
        "spark.driver.memory": args.spark_memory,
        "spark.local.dir": str(WORK / "spark-local"),
        "spark.sql.warehouse.dir": str(WORK / "spark-warehouse"),
        "spark.ui.enabled": "false",
    }
    conf.update(item.split("=", 1) for item in args.spark_conf)
    env = dict(os.environ, PYTHONPATH=f"{WORK}{os.pathsep}{ROOT}")
    load_before = wait_for_quiet(args.max_load, args.max_wait)
    print(f"{name}: load {load_before:.2f}, running", flush=True)
    timeout = args.spark_timeout if name == "spark" else args.timeout
    row = run_child(commands(data, name, args.spark_master, conf), env, timeout)
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    row.update(
        name=name,
        size=args.size,
        flows=args.flows,
        load_before=load_before,
        load_after=os.getloadavg()[0],
        commit=git,
        when=time.strftime("%Y-%m-%dT%H:%M:%S"),
        train_lines_file=str(data / "flows-train.jsonl"),
    )
    if name == "spark":
        row.update(master=args.spark_master, spark_conf=conf)
    secs = row.get("seconds", row["wall_seconds"])
    print(
        f"{name}: {secs:.1f} s (wall {row['wall_seconds']:.1f} s), peak RSS tree "
        f"{row['peak_rss_mb']:,.0f} MB, rc {row['returncode']}, load after "
        f"{row['load_after']:.2f}",
        flush=True,
    )
    for key in (
        "observations",
        "connections",
        "lines",
        "groups",
        "digest",
        "session_seconds",
        "stderr_tail",
        "stdout_tail",
    ):
        if key in row:
            print(f"  {key}: {row[key]}", flush=True)
    return row


#: Plotted measurements: (result name, label, seconds key).
SERIES = (
    ("duckdb", "bare DuckDB (reference)", "seconds"),
    ("embedded", "aggregate, embedded", "seconds"),
    ("spark", "aggregate, Spark local[2]", "seconds"),
    ("recommend", "recommend (CLI)", "wall_seconds"),
    ("shadow", "shadow (CLI)", "wall_seconds"),
    ("tighten", "tighten (CLI)", "wall_seconds"),
)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Log-log: seconds and peak RSS against flows, one line per stage and topology."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (name, label, key), color in zip(SERIES, colors, strict=False):
        for size, style in ((200, "o--"), (2000, "s-")):
            pts = sorted(
                (r["flows"], r.get(key, r["wall_seconds"]), r["peak_rss_mb"])
                for r in rows
                if r["name"] == name
                and r["size"] == size
                and r["returncode"] == 0
                and not r["timed_out"]
            )
            if not pts:
                continue
            xs = [p[0] for p in pts]
            kw = {"color": color, "label": f"{label}, large:{size}"}
            ax_t.plot(xs, [p[1] for p in pts], style, **kw)
            ax_m.plot(xs, [p[2] for p in pts], style, **kw)
    for ax, ylabel in ((ax_t, "seconds"), (ax_m, "peak RSS of the process tree (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("flow lines asked (--flows)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_title("time per stage")
    ax_m.set_title("peak memory per stage")
    ax_m.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle("netpol scale (2-core shared machine; dashed: large:200, solid: large:2000)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown growth table: one row per (topology, flows), ``s / MB`` per cell."""
    cols = [n for n, _, _ in SERIES]
    head = (
        "| topology | flows asked (train lines) | "
        + " | ".join(label for _, label, _ in SERIES)
        + " | load 1-min before runs |"
    )
    out = [head, "|" + "---|" * (len(cols) + 3)]
    keys = sorted({(r["size"], r["flows"]) for r in rows})
    for size, flows in keys:
        got = {r["name"]: r for r in rows if (r["size"], r["flows"]) == (size, flows)}
        lines = next((r["lines"] for r in got.values() if "lines" in r), None)
        cells = []
        for name, _, key in SERIES:
            r = got.get(name)
            if r is None:
                cells.append("not run")
            elif r["timed_out"] or r["returncode"] not in (0, 3):
                cells.append(f"failed/stopped after {r['wall_seconds']:.0f} s")
            else:
                secs = r.get(key, r["wall_seconds"])
                cells.append(f"{secs:,.1f} s / {r['peak_rss_mb']:,.0f} MB")
        loads = [r["load_before"] for r in got.values()]
        shown = f"{lines:,}" if lines else "?"
        out.append(
            f"| large:{size} | {flows:,} ({shown}) | "
            + " | ".join(cells)
            + f" | {min(loads):.1f}-{max(loads):.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=200, help="large:SIZE workloads")
    parser.add_argument("--engines", default="duckdb,embedded,spark")
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--keep", action="store_true", help="reuse simulated data")
    parser.add_argument("--out", default=str(ROOT / "bench" / "scale.json"))
    parser.add_argument("--plot", action="store_true", help="only render bench/scale.png")
    parser.add_argument("--table", action="store_true", help="only print the Markdown table")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-memory", default="8g")
    parser.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra Spark setting, repeatable",
    )
    parser.add_argument("--spark-timeout", type=float, default=45 * 60)
    parser.add_argument("--timeout", type=float, default=45 * 60)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--max-wait", type=float, default=600)
    args = parser.parse_args()
    out = Path(args.out)
    if args.table:
        print(table(load_results(out)))
        return
    if args.plot:
        plot(load_results(out), ROOT / "bench" / "scale.png")
        return
    data = prepare(args.size, args.flows, args.keep)
    names = [n for n in args.engines.split(",") if n] + [n for n in args.stages.split(",") if n]
    for name in names:
        if name not in ENGINES + STAGES:
            sys.exit(f"unknown measurement {name!r}")
        save_result(out, measure(args, data, name))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
