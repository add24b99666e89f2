"""Draw the communication graph with Graphviz (``dot``, through the ``graphviz`` package).

One cluster per namespace, addresses outside the cluster in their own box.
Allowed edges are green and carry their ports; would-be-denied and newly
denied edges are red and dashed, newly allowed ones blue. Every edge links
(``href``) to the row or policy that explains it, so in the HTML page a click
on a red edge jumps to the flow that would be denied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from recommender.errors import RecommenderError
from recommender.report.html_model import Edge, Node, ReportData

EDGE_STYLE = {
    "allowed": {"color": "#2e7d32", "style": "solid"},
    "newly_allowed": {"color": "#1565c0", "style": "bold"},
    "would_deny": {"color": "#c62828", "style": "dashed", "penwidth": "2"},
    "newly_denied": {"color": "#c62828", "style": "dashed", "penwidth": "2"},
}
NODE_FILL = {
    "group": "#e3f2fd",
    "workload": "#fff8e1",
    "selector": "#f3e5f5",
    "external": "#eceff1",
}
#: Ports shown on an edge label before "+N".
MAX_PORTS = 3


class GraphvizMissing(RecommenderError):
    """The ``dot`` program is not installed."""

    def __str__(self) -> str:
        return "Graphviz 'dot' not found: install it (Debian: apt-get install -y graphviz)"


def svg_id(text: str) -> str:
    """A string usable as an SVG/HTML id.

    >>> svg_id("shop/(all pods)")
    'shop-all-pods'
    """
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


def _edge_label(ports: tuple[str, ...]) -> str:
    """Ports on an edge, cut after :data:`MAX_PORTS`.

    >>> _edge_label(("TCP 1", "TCP 2", "TCP 3", "TCP 4"))
    'TCP 1, TCP 2, TCP 3 +1'
    """
    more = f" +{len(ports) - MAX_PORTS}" if len(ports) > MAX_PORTS else ""
    return ", ".join(ports[:MAX_PORTS]) + more


def build_dot(data: ReportData, namespace: str | None = None) -> object:
    """A ``graphviz.Digraph`` of every edge, or of those touching ``namespace``."""
    import graphviz

    edges = merge_edges(e for e in data.edges if namespace is None or _touches(data, e, namespace))
    used = sorted({e.src for e in edges} | {e.dst for e in edges})
    if namespace is not None:
        used = sorted(set(used) | {n.id for n in data.nodes.values() if n.namespace == namespace})
    name = f"netpol-{svg_id(namespace)}" if namespace else "netpol"
    graph = graphviz.Digraph(name=name, graph_attr=_graph_attrs(), node_attr=_node_attrs())
    # DOT reads "a:b" as node a, port b: nodes get plain names, ids go in labels.
    names = {nid: f"n{i}" for i, nid in enumerate(sorted(data.nodes))}
    prefix = f"{svg_id(namespace)}-" if namespace else ""
    _add_clusters(graph, [data.nodes[n] for n in used], names, prefix)
    for i, edge in enumerate(sorted(edges, key=_edge_key)):
        graph.edge(names[edge.src], names[edge.dst], **_edge_attrs(edge, i, namespace))
    return graph


def merge_edges(edges: Iterable[Edge]) -> list[Edge]:
    """One edge per (src, dst, kind): ports united, connections summed, first anchor kept."""
    merged: dict[tuple[str, str, str], Edge] = {}
    for e in sorted(edges, key=_edge_key):
        old = merged.get((e.src, e.dst, e.kind))
        if old is None:
            merged[(e.src, e.dst, e.kind)] = e
            continue
        count = None if old.connections is None else old.connections + (e.connections or 0)
        ports = tuple(sorted(set(old.ports) | set(e.ports)))
        merged[(e.src, e.dst, e.kind)] = Edge(e.src, e.dst, e.kind, ports, old.anchor, count)
    return list(merged.values())


def _touches(data: ReportData, edge: Edge, namespace: str) -> bool:
    return namespace in (data.nodes[edge.src].namespace, data.nodes[edge.dst].namespace)


def _edge_key(edge: Edge) -> tuple[str, str, str, str]:
    return (edge.src, edge.dst, edge.kind, edge.anchor)


def _graph_attrs() -> dict[str, str]:
    return {"rankdir": "LR", "fontname": "Helvetica", "fontsize": "12", "nodesep": "0.25"}


def _node_attrs() -> dict[str, str]:
    return {"shape": "box", "style": "rounded,filled", "fontname": "Helvetica", "fontsize": "11"}


def _add_clusters(graph: object, nodes: Iterable[Node], names: dict[str, str], prefix: str) -> None:
    by_ns: dict[str, list[Node]] = {}
    for node in nodes:
        by_ns.setdefault(node.namespace, []).append(node)
    for ns in sorted(by_ns):
        label = ns or "outside the cluster"
        with graph.subgraph(name=f"cluster_{svg_id(ns) or 'external'}") as sub:  # type: ignore[attr-defined]
            sub.attr(
                label=label, style="rounded", color="#90a4ae", id=f"{prefix}ns-{svg_id(label)}"
            )
            for node in sorted(by_ns[ns], key=lambda n: n.id):
                sub.node(
                    names[node.id],
                    label=node.label,
                    fillcolor=NODE_FILL[node.kind],
                    id=f"{prefix}node-{names[node.id]}-{svg_id(node.id)}",
                    tooltip=f"{node.kind}: {node.id}",
                    **{"class": f"node-{node.kind}"},
                )


def _edge_attrs(edge: Edge, i: int, namespace: str | None) -> dict[str, str]:
    count = f" ({edge.connections} connections)" if edge.connections is not None else ""
    prefix = f"{svg_id(namespace)}-" if namespace else ""
    return {
        "label": _edge_label(edge.ports),
        "fontsize": "9",
        "fontcolor": EDGE_STYLE[edge.kind]["color"],
        "href": f"#{edge.anchor}",
        "tooltip": f"{edge.kind}: {edge.src} -> {edge.dst} {', '.join(edge.ports)}{count}",
        "id": f"edge-{prefix}{i}",
        "class": f"edge_{edge.kind}",
        **EDGE_STYLE[edge.kind],
    }


def render(graph: object, fmt: str) -> bytes:
    """Run ``dot`` on the graph; raise :class:`GraphvizMissing` without it."""
    import graphviz

    try:
        return graph.pipe(format=fmt)  # type: ignore[attr-defined,no-any-return]
    except graphviz.ExecutableNotFound:
        raise GraphvizMissing() from None


def inline_svg(svg: bytes) -> str:
    """The ``<svg>`` element alone (no XML prolog or DOCTYPE), to embed in HTML."""
    text = svg.decode("utf-8")
    return text[text.index("<svg") :]
