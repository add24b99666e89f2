"""``netpol demo``: the whole pipeline on bundled (or freshly simulated) data.

Recommend on the training window, shadow the fresh window (after a rollout)
against the recommendation, score it against the ground truth, and print a
short summary with the output paths. Each step is the very command a user
would run, so the demo shows nothing the tool cannot do.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from recommender.cli._args import add_force_argument
from recommender.errors import InputError, RecommenderError
from recommender.policy_io.atomic import atomic_directory

NAME = "demo"
HELP = "run simulate/recommend/shadow/score end to end on data/sample and summarise"

DATA_FILES = (
    "inventory.json",
    "inventory-fresh.json",
    "flows-train.jsonl.gz",
    "flows-fresh.jsonl.gz",
    "truth.json",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol demo``."""
    parser.add_argument(
        "--data",
        default="data/sample",
        metavar="DIR",
        help="simulator output to use (default: data/sample)",
    )
    parser.add_argument(
        "--simulate",
        metavar="TOPOLOGY",
        help="simulate TOPOLOGY first (webshop, saas, large:N) instead of --data",
    )
    parser.add_argument("--window", default="6h", help="window for --simulate (default 6h)")
    parser.add_argument("--seed", type=int, default=7, help="seed for --simulate")
    parser.add_argument(
        "--out",
        default="demo-out",
        metavar="DIR",
        help="where everything is written (default: demo-out)",
    )
    add_force_argument(parser, "replace an existing --out")


def _step(title: str, argv: list[str], quiet: bool = True) -> str:
    """Run one ``netpol`` command in-process; raise if it fails; return its stdout."""
    from recommender.cli.parser import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    if code != 0:
        raise StepFailed(title, code)
    return buffer.getvalue()


class StepFailed(RecommenderError):
    def __init__(self, step: str, code: int) -> None:
        super().__init__(step, code)
        self.step = step
        self.code = code
        self.exit_code = code if code in (1, 2, 3) else 1

    def __str__(self) -> str:
        return f"demo step '{self.step}' failed with exit code {self.code} (see above)"


def run(args: argparse.Namespace) -> int:
    """Run the four steps into a temp directory that replaces ``--out`` when all succeed.

    Like every other output, ``--out`` is written atomically: a failed or killed
    demo leaves the previous one (or none) in place, never a half-written tree.
    The steps write into the temp directory; what they record of their own
    paths is rewritten to ``--out`` before the rename, so the outputs read as
    if written there directly.
    """
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out, args.force) as tmp:
        _run_steps(args, tmp, lambda line: print(_in_out(line, tmp, out), flush=True))
        _rename_paths(tmp, tmp, out)
    _print_paths(out, _load(out / "shadow.json"), _load(out / "score.json"))
    return 0


def _run_steps(args: argparse.Namespace, out: Path, say: Callable[[str], None]) -> None:
    """Simulate (when asked), recommend, shadow and score into ``out``, saying each step."""
    data = _data(args, out)
    policies, shadow_md = out / "policies", out / "shadow-report.md"
    say(f"1/4 data: {data}")
    rec = _step(
        "recommend",
        [
            "recommend",
            "--flows",
            str(data / "flows-train.jsonl.gz"),
            "--inventory",
            str(data / "inventory.json"),
            "--out",
            str(policies),
        ],
    )
    say("2/4 recommend: " + rec.strip().splitlines()[0])
    shadow = _step(
        "shadow",
        [
            "shadow",
            "--policies",
            str(policies),
            "--inventory",
            str(data / "inventory-fresh.json"),
            "--flows",
            str(data / "flows-fresh.jsonl.gz"),
            "--report",
            str(shadow_md),
            "--json",
            str(out / "shadow.json"),
            "--verdicts",
            str(out / "verdicts.jsonl"),
        ],
    )
    say("3/4 shadow (fresh window, after a rollout): " + shadow.strip().splitlines()[1])
    table = _step(
        "score",
        [
            "score",
            "--policies",
            str(policies),
            "--truth",
            str(data / "truth.json"),
            "--flows",
            str(data / "flows-fresh.jsonl.gz"),
            "--inventory",
            str(data / "inventory-fresh.json"),
            "--json",
            str(out / "score.json"),
        ],
    )
    say("4/4 score against the ground truth:")
    for line in table.rstrip().splitlines():
        say(f"    {line}")


def _in_out(text: str, tmp: Path, out: Path) -> str:
    """``text`` with the temp directory's path (plain or JSON-escaped) read as ``out``."""
    for a, b in ((str(tmp), str(out)), (_json_str(tmp), _json_str(out))):
        text = text.replace(a, b)
    return text


def _json_str(path: Path) -> str:
    return orjson.dumps(str(path)).decode()[1:-1]


def _rename_paths(root: Path, tmp: Path, out: Path) -> None:
    """Rewrite the temp path to ``out`` in every text file the steps wrote under ``root``
    (reports record their output paths). Gzipped simulator data holds no paths."""
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix == ".gz":
            continue
        data = path.read_bytes()
        if str(tmp).encode() in data or _json_str(tmp).encode() in data:
            path.write_bytes(_in_out(data.decode("utf-8"), tmp, out).encode("utf-8"))


def _data(args: argparse.Namespace, out: Path) -> Path:
    if args.simulate:
        data = out / "data"
        _step(
            "simulate",
            [
                "simulate",
                "--topology",
                args.simulate,
                "--window",
                args.window,
                "--seed",
                str(args.seed),
                "--out",
                str(data),
            ],
        )
        return data
    data = Path(args.data)
    missing = [f for f in DATA_FILES if not (data / f).is_file()]
    if missing:
        raise InputError(
            str(data),
            f"missing {', '.join(missing)}",
            hint="run from the repository root, or pass --data DIR or --simulate",
        )
    return data


def _load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def _print_paths(out: Path, shadow: dict[str, Any], score: dict[str, Any]) -> None:
    denied = shadow["would_be_denied"]
    legit = score["false_deny"]["denied_edges"]
    print(
        f"\nFresh-window edges the recommendation would deny: {len(denied)}. The truth says "
        f"{len(legit)} of them are legitimate ({sum(not e['trained'] for e in legit)} never "
        "seen in training); the rest are the simulated attacks."
    )
    for row in denied[:5]:
        port = f"{row['port']}/{row['protocol']}" if row["port"] is not None else row["protocol"]
        print(
            f"    {row['src_workload']} -> {row['dst_workload']} {port}: "
            f"{row['connections']} connections, denied by {row['denied_by']}"
        )
    print("\nOutputs:")
    for name, what in (
        ("policies/", "recommended NetworkPolicies (kustomize) + SUMMARY.md"),
        ("shadow-report.md", "shadow-mode report on the fresh window"),
        ("verdicts.jsonl", "one verdict per fresh flow record"),
        ("score.json", "quality measures against the ground truth"),
    ):
        print(f"    {out / name}  {what}")
