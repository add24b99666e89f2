"""``netpol report``: one self-contained HTML page (graph, tables, evidence) + SVG/PNG.

Reads what ``recommend``, ``shadow --json``, ``tighten`` or ``diff --json``
wrote (see :mod:`recommender.report.html_sources`) and writes OUT.html with the
graph inline, and the whole graph beside it as OUT.svg and OUT.png for a pull
request. Every file is written atomically; existing ones need ``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from recommender.cli._args import add_force_argument

NAME = "report"
HELP = "an HTML report (communication graph, tables, evidence) of recommend/shadow/tighten/diff"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol report``."""
    parser.add_argument(
        "--from",
        dest="sources",
        nargs="+",
        required=True,
        metavar="PATH",
        help="a recommend/tighten output folder, or a shadow/tighten/diff JSON report "
        "(several may be combined, e.g. policies and the shadow report on them)",
    )
    parser.add_argument("--out", required=True, metavar="OUT.html", help="the HTML file")
    parser.add_argument("--title", default="netpol report", help="page title")
    add_force_argument(parser, "replace existing outputs")


def outputs(out: str) -> dict[str, Path]:
    """The HTML path and the graph files beside it.

    >>> sorted(outputs("r/report.html").values())
    [PosixPath('r/report.html'), PosixPath('r/report.png'), PosixPath('r/report.svg')]
    """
    html = Path(out)
    return {"html": html, "svg": html.with_suffix(".svg"), "png": html.with_suffix(".png")}


def run(args: argparse.Namespace) -> int:
    """Read, build, draw, write (checking every target before the first write)."""
    from recommender.policy_io.atomic import check_writable, write_bytes_atomic, write_text_atomic
    from recommender.progress import Progress
    from recommender.report.html_graph import build_dot, inline_svg, render
    from recommender.report.html_render import render_html
    from recommender.report.html_sources import build_report, read_sources

    paths = outputs(args.out)
    for path in paths.values():
        check_writable(path, args.force)
    progress = Progress("report: drawing namespaces")
    data = build_report(read_sources(args.sources), args.title)
    whole = build_dot(data)
    graphs = {"": inline_svg(render(whole, "svg"))}
    for ns in data.namespaces():
        graphs[ns] = inline_svg(render(build_dot(data, ns), "svg"))
        progress.update(1, ns)
    progress.done()
    write_bytes_atomic(paths["svg"], render(whole, "svg"), args.force)
    write_bytes_atomic(paths["png"], render(whole, "png"), args.force)
    write_text_atomic(paths["html"], render_html(data, graphs), args.force)
    denied = sum(e.kind in ("would_deny", "newly_denied") for e in data.edges)
    print(
        f"wrote {paths['html']} ({len(data.nodes)} nodes, {len(data.edges)} edges, "
        f"{denied} denied) and {paths['svg']}, {paths['png']}"
    )
    return 0
