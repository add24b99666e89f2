"""Write a recommendation as a kustomize tree (DESIGN.md "Output layout").

```
OUT/kustomization.yaml
OUT/SUMMARY.md
OUT/<namespace>/kustomization.yaml
OUT/<namespace>/default-deny.yaml, allow-dns.yaml, <group>.yaml
```

:func:`render_tree` is pure (relative path -> text, deterministic bytes);
:func:`write_tree` writes it through ``atomic_directory``, so a failed run never
leaves a half-written directory and an existing one is replaced only with
``force``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from recommender.model import NetworkPolicy
from recommender.policy_io.atomic import atomic_directory
from recommender.policy_io.policy_yaml import _dump, dump_policy_yaml

KUSTOMIZE_API = "kustomize.config.k8s.io/v1beta1"


def kustomization(resources: Sequence[str]) -> str:
    """A ``Kustomization`` listing ``resources`` in the given order."""
    return str(
        _dump({"apiVersion": KUSTOMIZE_API, "kind": "Kustomization", "resources": list(resources)})
    )


def render_tree(policies: Sequence[NetworkPolicy], summary: str) -> dict[str, str]:
    """Every output file as ``{relative path: text}``."""
    files: dict[str, str] = {}
    namespaces: dict[str, list[str]] = {}
    for policy in policies:
        path = f"{policy.namespace}/{policy.name}.yaml"
        if path in files:
            raise ValueError(f"two policies would be written to {path}")
        files[path] = dump_policy_yaml(policy)
        namespaces.setdefault(policy.namespace, []).append(f"{policy.name}.yaml")
    for ns, names in namespaces.items():
        files[f"{ns}/kustomization.yaml"] = kustomization(names)
    files["kustomization.yaml"] = kustomization(sorted(namespaces))
    files["SUMMARY.md"] = summary
    return dict(sorted(files.items()))


def write_tree(files: Mapping[str, str], out: str | os.PathLike[str], force: bool = False) -> Path:
    """Write ``files`` under ``out`` atomically; refuse an existing ``out`` without ``force``."""
    with atomic_directory(out, force=force) as tmp:
        for rel, text in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
    return Path(out)


def write_recommendation(
    rec: Any, out: str | os.PathLike[str], force: bool = False, check: Any = None
) -> Path:
    """Render ``rec`` (a :class:`recommender.recommend.pipeline.Recommendation`) and write it."""
    return write_tree(render_tree(rec.policies, rec.summary_markdown(check)), out, force)
