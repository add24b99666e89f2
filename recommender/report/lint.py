"""Lint output: text lines for terminals and a JSON document for machines."""

from __future__ import annotations

from typing import Any

from recommender.findings import LintFinding, rule_for
from recommender.lint import LintReport


def _where(f: LintFinding) -> str:
    if f.file is None:
        return "<inventory>"
    return f"{f.file}:{f.line}" if f.line is not None else f.file


def render_text(report: LintReport) -> str:
    """One line per finding (``file:line: severity ID [policy] message``), then a summary."""
    lines = [
        f"{_where(f)}: {f.severity} {f.rule_id} [{f.policy or '-'}] {f.message}"
        for f in report.findings
    ]
    c = report.counts()
    lines.append(
        f"{report.policies} policies in {len(report.files)} files "
        f"({report.invalid} invalid): {c['error']} errors, {c['warning']} warnings, "
        f"{c['note']} notes"
    )
    if report.kinds:
        counted = ", ".join(f"{n} {k}" for k, n in report.kinds.items())
        lines.append(
            f"note: also read {counted}: checked for isolation, DNS and the kind checks "
            "(NPL050-NPL059); the selector, label and redundancy checks cover NetworkPolicy only"
        )
    return "\n".join(lines) + "\n"


def report_dict(report: LintReport) -> dict[str, Any]:
    """The JSON form: summary, the rules that fired, every finding."""
    ids = sorted({f.rule_id for f in report.findings})
    return {
        "summary": {
            "files": report.files,
            "policies": report.policies,
            "invalid_policies": report.invalid,
            **({"other_kinds": dict(report.kinds)} if report.kinds else {}),
            **report.counts(),
        },
        "rules": {
            i: {
                "name": rule_for(i).name,
                "severity": rule_for(i).severity,
                "description": rule_for(i).description,
            }
            for i in ids
        },
        "findings": [
            {
                "id": f.rule_id,
                "severity": f.severity,
                "file": f.file,
                "line": f.line,
                "policy": f.policy,
                "path": f.path,
                "message": f.message,
            }
            for f in report.findings
        ],
    }
