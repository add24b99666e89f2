"""SUMMARY.md: groups, evidence, exclusions, assumptions and warnings, per namespace."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from recommender.recommend.accounting import outcome_of
from recommender.recommend.learning import REASONS
from recommender.recommend.selectors import selector_labels_text
from recommender.recommend.stability_render import current_stability, stability_markdown

#: Rows listed per exclusion reason before "... and N more".
MAX_LISTED = 25


def peer_text(key: str, index: Any) -> str:
    """Readable peer: ``ns/name`` for workloads, the key otherwise."""
    wl = index.workloads.get(key) if index is not None else None
    return f"{wl.namespace}/{wl.name}" if wl is not None else key


def edge_text(edge: tuple[str, str, str, int], index: Any) -> str:
    direction, peer, proto, port = edge
    word = "to" if direction == "egress" else "from"
    return f"{direction} {word} {peer_text(peer, index)} {proto}/{port}"


def render_summary(rec: Any, check: Any = None) -> str:
    """The whole SUMMARY.md as text (deterministic for equal input)."""
    by_ns: dict[str | None, list[dict[str, Any]]] = {}
    for row in rec.excluded.to_dict("records"):
        by_ns.setdefault(_row_namespace(row), []).append(row)
    lines = ["# netpol recommend: summary", ""]
    if getattr(rec, "coverage", None) is not None:  # first: partial coverage must be seen
        lines += rec.coverage.markdown()
    lines += _header(rec)
    lines += unknown_denied_banner(check)
    lines += _section("Assumptions", _assumptions(rec) + infra_assumptions(rec))
    lines += accounting_section(rec)
    lines += _section("Warnings", rec.warnings or ["none"])
    stability = current_stability(rec)
    if stability is not None:
        lines += stability_markdown(stability, lambda e: edge_text(e, rec.index))
    if getattr(rec, "unexpressible", None):
        from recommender.recommend.own_node import summary_section

        lines += summary_section(rec.unexpressible)
    if rec.scans:
        lines += _section(
            "Scan findings (excluded unless --include-suspicious)",
            [f.describe(peer_text(f.src_key, rec.index)) for f in rec.scans],
        )
    for ns in rec.namespaces:
        lines += _namespace(rec, ns, by_ns.get(ns, []))
    lines += _excluded(
        rec, None, by_ns.get(None, []), "## Excluded traffic outside the namespaces in scope"
    )
    if check is not None:
        lines += _self_check(check)
    return "\n".join(lines).rstrip() + "\n"


def _header(rec: Any) -> list[str]:
    o = rec.options
    first, last = rec.window
    skipped = [f"`{ns}` ({why})" for ns, why in sorted(rec.skipped_namespaces.items())]
    return [
        f"- window: {first or '?'} to {last or '?'}",
        f"- namespaces with policies: {', '.join(f'`{n}`' for n in rec.namespaces) or 'none'}",
        f"- namespaces without policies: {', '.join(skipped) or 'none'}",
        f"- policies: {len(rec.policies)}; groups: {len(rec.groups)}; " + observations_line(rec),
        f"- options: merge-similar={o.merge_similar}, cidr-budget={o.cidr_budget}, "
        f"named-ports={o.named_ports}, port-ranges={o.port_ranges}, allow-host={o.allow_host}, "
        f"include-suspicious={o.include_suspicious}, "
        f"public-ingress-min-sources={o.public_ingress_min_sources}",
        "",
    ]


def _section(title: str, items: Iterable[str]) -> list[str]:
    return [f"## {title}", "", *[f"- {i}" for i in items], ""]


def _assumptions(rec: Any) -> list[str]:
    dns = rec.dns
    out = [
        "learned: connection requests that flowed (allowed, forwarded, redirected, audit); "
        "replies, policy drops and scan-shaped traffic never become rules",
        f"cluster DNS: `{dns.namespace}` pods `{selector_labels_text(dns.selector)}` "
        f"on {', '.join(f'{p}/{n}' for p, n in dns.ports)} (from {dns.source}); every "
        "namespace in scope may reach it (the namespace-wide DNS allowance)",
        "system namespaces get no policies unless named with --namespace; traffic to and "
        "from them still produces the rules the namespaces in scope need",
        "unknown peers are reported and never widened into a selector",
    ]
    if rec.options.allow_host:
        out.append("--allow-host: ingress from every node address on the ports observed")
    else:
        out.append(
            "ingress from another node is an exact ipBlock of the node address seen; "
            "--allow-host writes every node address (the own node included)"
        )
    budget = rec.options.cidr_budget
    out.append(
        f"external addresses: CIDR budget {budget} "
        + ("(exact /32 and /128 blocks)" if budget == 0 else "addresses beyond those seen")
    )
    return out


def _namespace(rec: Any, ns: str, excluded: list[dict[str, Any]]) -> list[str]:
    lines = [f"## Namespace `{ns}`", ""]
    lines += [f"Policies: {', '.join(f'`{p.name}`' for p in rec.policies_in(ns))}", ""]
    groups = [g for g in rec.groups if g.namespace == ns]  # few namespaces: a scan is fine
    lines += [
        "| group | members | selector | connections | first seen | last seen |",
        "|---|---|---|---|---|---|",
    ]
    for g in groups:
        members = "<br>".join(
            f"{m.name} ({', '.join(m.owners)}, {len(m.pods)} pods)" for m in g.members
        )
        name = group_label(rec, g)
        lines.append(
            f"| {name} | {members} | `{selector_labels_text(g.selector)}` | "
            f"{g.connections} | {g.first_seen or '-'} | {g.last_seen or '-'} |"
        )
    lines.append("")
    for g in groups:
        lines += _group_notes(rec, g)
    lines += _excluded(rec, ns, excluded, f"### Excluded traffic of `{ns}`")
    return lines


def _group_notes(rec: Any, g: Any) -> list[str]:
    out: list[str] = []
    for member, extra in g.extra_edges:
        out.append(
            f"- merge `{g.name}`: allows `{member}` what it never used: "
            + "; ".join(edge_text(e, rec.index) for e in extra)
        )
    for direction, block in g.notes.cidr_blocks:
        names = g.notes.fqdns.get(block.cidr)
        fq = f" ({', '.join(names)})" if names else ""
        out.append(
            f"- `{g.name}` {direction} ipBlock {block.cidr}{fq}: admits {block.admitted} "
            f"address(es), {block.extra} beyond the {len(block.members)} observed"
        )
    for peer_ns in sorted(set(g.notes.namespace_wide)):
        out.append(
            f"- `{g.name}`: every workload of namespace `{peer_ns}` is a peer, so the "
            "rule selects the whole namespace"
        )
    for public in g.notes.public:
        out.append(
            f"- `{g.name}` is a public endpoint: ingress from {public}, minus the pod "
            "networks; --public-ingress-min-sources sets when this applies"
        )
    for split in g.notes.split_peers:
        out.append(f"- `{g.name}`: peers {split} share no exact selector; several peers list them")
    return out + ([""] if out else [])


def _row_namespace(row: dict[str, Any]) -> str | None:
    for role, key in (("src_role", "src_key"), ("dst_role", "dst_key")):
        if row[role] == "workload" and row[f"{role[:3]}_in"]:
            return str(row[key].split("/", 1)[0])
    return None


def _excluded(rec: Any, ns: str | None, rows: list[dict[str, Any]], title: str) -> list[str]:
    if not rows:
        return [title, "", "- none", ""] if ns is not None else []
    lines = [title, ""]
    frame = pd.DataFrame(rows)
    for reason, group in sorted(frame.groupby("reason"), key=lambda kv: str(kv[0])):
        conns = int(group["connections"].sum())
        lines.append(
            f"- **{reason}** [{outcome_of(reason)}] ({REASONS.get(str(reason), reason)}): "
            f"{len(group)} observation(s), {conns} connection(s)"
        )
        for r in (
            group.sort_values(["src_key", "dst_key", "port"]).head(MAX_LISTED).to_dict("records")
        ):
            port = "-" if pd.isna(r["port"]) else int(r["port"])
            lines.append(
                f"  - {peer_text(r['src_key'], rec.index)} -> "
                f"{peer_text(r['dst_key'], rec.index)} {r['protocol']}/{port}: "
                f"{r['connections']} connection(s)"
            )
        if len(group) > MAX_LISTED:
            lines.append(f"  - ... and {len(group) - MAX_LISTED} more")
    return lines + [""]


def _self_check(check: Any) -> list[str]:
    lines = [
        "## Self-check",
        "",
        f"- learned observations replayed: {check.checked_learned}, denied: "
        f"{len(check.denied_learned)}",
        f"- excluded observations replayed: {check.checked_excluded}, that the output "
        f"would allow: {len(check.allowed_excluded)}",
        f"- validation findings: {len(check.findings)}",
    ]
    lines += [f"  - would allow: {a}" for a in check.allowed_excluded[:MAX_LISTED]]
    lines += unknown_denied_lines(check)
    return lines + [""]


# -- infrastructure peers and accounting (issue 11) ------------------------------------


def infra_assumptions(rec: Any) -> list[str]:
    """What the reader must know about node, API server and NodeLocal DNS rules."""
    out = [
        "own node: the API reference allows ingress \"if the traffic source is the pod's "
        "local node\" whatever the policies say, so traffic from a pod's own node (kubelet "
        "probes, SNATed hairpin) gets no rule and is listed as own-node; a pod cannot "
        "block access to itself either"
    ]
    learned = rec.learned
    keys = set(learned["src_key"]) | set(learned["dst_key"])
    if any(k.startswith("apiserver:") for k in keys):
        out.append(
            "API server: egress (and webhook ingress) ipBlocks use the address and port "
            "the flows show after Service translation; Cilium gives node and API server "
            "addresses reserved identities, and matches an ipBlock on them only when "
            "configured to (cilium/cilium#16308); a kube-apiserver entity rule does"
        )
    if any(k.startswith("host:") for k in keys):
        out.append(
            "other nodes: ingress from and egress to node addresses are exact ipBlocks of "
            "the addresses seen; a node added later is not covered"
        )
    if getattr(rec.dns, "addresses", ()):
        out.append(
            "NodeLocal DNSCache: allow-dns also allows "
            + ", ".join(f"{a}/32" for a in rec.dns.addresses)
            + " on 53 (a hostNetwork cache that no pod selector matches)"
        )
    return out


def group_label(rec: Any, g: Any) -> str:
    """The group's name in the table, saying why a group without rules has none."""
    if g.edges:
        return str(g.name)
    counts = rec.accounting.by_group.get(f"{g.namespace}/{g.name}", {})
    if counts.get("learned"):
        return f"{g.name} (learned traffic is DNS only: allow-dns covers it)"
    other = {k: v for k, v in counts.items() if v and k != "learned"}
    if other:
        parts = ", ".join(f"{v} {k}" for k, v in sorted(other.items()))
        return f"{g.name} (nothing learned: {parts} observation(s); default-deny only)"
    return f"{g.name} (no traffic observed: default-deny only)"


def accounting_section(rec: Any) -> list[str]:
    """Counts per outcome, reason, namespace and group; they add up to the total."""
    acc = rec.accounting
    lines = [
        "## Accounting",
        "",
        f"- observations: {acc.total} = learned {acc.outcomes['learned']} + excluded "
        f"{acc.outcomes['excluded']} + unknown {acc.outcomes['unknown']}",
    ]
    lines += [f"  - {r} [{outcome_of(r)}]: {n}" for r, n in sorted(acc.reasons.items())]
    lines += [f"- does not add up: {p}" for p in acc.problems()]
    for title, table in (("namespace", acc.by_namespace), ("group", acc.by_group)):
        lines += ["", f"| {title} | learned | excluded | unknown |", "|---|---|---|---|"]
        lines += [
            f"| {k} | {c['learned']} | {c['excluded']} | {c['unknown']} |"
            for k, c in sorted(table.items())
        ]
    return lines + [""]


def observations_line(rec: Any) -> str:
    """The header's counts: observations by outcome (see the Accounting section)."""
    acc = rec.accounting
    return (
        f"observations: {acc.total} (learned {acc.outcomes['learned']}, excluded "
        f"{acc.outcomes['excluded']}, unknown {acc.outcomes['unknown']})"
    )


def unknown_denied_banner(check: Any) -> list[str]:
    """A line under the header when the output would deny traffic that flowed."""
    denied = getattr(check, "denied_unknown", ())
    if not denied:
        return []
    return [
        f"**WARNING: {len(denied)} observation(s) of traffic that flowed but was not "
        "learned would be denied by this output; see the Self-check section.**",
        "",
    ]


def unknown_denied_lines(check: Any) -> list[str]:
    """The loud warning: traffic that flowed, was not learned, and the output would deny."""
    denied = getattr(check, "denied_unknown", ())
    out = (
        [
            f"- WARNING: traffic that flowed but was not learned would be denied by the "
            f"default-deny this output adds: {len(denied)} observation(s)"
        ]
        if denied
        else []
    )
    out += [f"  - {d}" for d in denied[:MAX_LISTED]]
    if len(denied) > MAX_LISTED:
        out.append(f"  - ... and {len(denied) - MAX_LISTED} more")
    return out
