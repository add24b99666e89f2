"""SARIF 2.1.0 for code-scanning UIs (GitHub, GitLab, VS Code SARIF viewer).

Structure, per the OASIS SARIF 2.1.0 specification: one ``run`` whose
``tool.driver.rules`` lists every rule that fired (``id``, ``name``,
``shortDescription``, ``defaultConfiguration.level``) and whose ``results`` carry
``ruleId``, ``ruleIndex``, ``level`` (``error``/``warning``/``note``), ``message.text``
and, when the finding is in a file, ``locations[].physicalLocation`` with
``artifactLocation.uri`` (relative, ``/`` separators) and ``region.startLine``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recommender import __version__
from recommender.findings import LintFinding, rule_for

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/netpol-recommender/netpol-recommender/blob/main/docs/lint.md"


def artifact_uri(path: str, base: str | None = None) -> str:
    """A file path as a SARIF URI: relative to ``base`` when inside it, ``/`` separators.

    >>> artifact_uri("/repo/k8s/a.yaml", "/repo")
    'k8s/a.yaml'
    >>> artifact_uri("policies/b.yaml", None)
    'policies/b.yaml'
    """
    target = Path(path)
    if base is not None:
        try:
            target = Path(os.path.relpath(Path(path).resolve(), Path(base).resolve()))
        except ValueError:
            target = Path(path)
        if target.parts[:1] == ("..",):
            target = Path(path)
    return target.as_posix()


def to_sarif(findings: Sequence[LintFinding], base: str | None = None) -> dict[str, Any]:
    """The SARIF log (a dict ready for JSON) of ``findings``."""
    ids = sorted({f.rule_id for f in findings})
    index = {rid: i for i, rid in enumerate(ids)}
    rules = [_rule(rid) for rid in ids]
    results = [_result(f, index[f.rule_id], base) for f in findings]
    return {
        "$schema": SARIF_SCHEMA,
        "version": SARIF_VERSION,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "netpol-lint",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }


def _rule(rule_id: str) -> dict[str, Any]:
    r = rule_for(rule_id)
    return {
        "id": r.id,
        "name": r.name,
        "shortDescription": {"text": r.description},
        "helpUri": f"{INFO_URI}#{r.id.lower()}",
        "defaultConfiguration": {"level": r.severity},
    }


def _result(f: LintFinding, rule_index: int, base: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": rule_index,
        "level": f.severity,
        "message": {"text": f.message},
    }
    if f.file is not None:
        physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(f.file, base)}}
        if f.line is not None:
            physical["region"] = {"startLine": f.line}
        out["locations"] = [{"physicalLocation": physical}]
    if f.policy is not None:
        logical = {
            "fullyQualifiedName": f.policy + (f"#{f.path}" if f.path else ""),
            "kind": "object",
        }
        out.setdefault("locations", [{}])[0]["logicalLocations"] = [logical]
    return out
