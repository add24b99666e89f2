"""Commands that read an inventory, given one the API would refuse: exit 2, one line.

``recommend`` and ``shadow`` read the inventory first, so these runs stop
before any flow is read; in-process through ``recommender.cli.parser.main``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from recommender.cli.parser import main
from tests.conftest import FIXTURES, SAMPLES
from tests.fixtures.recommend.shop import shop_items

HUBBLE = SAMPLES / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress-named.ndjson"
POLICY = FIXTURES / "shadow" / "data-default-deny.yaml"


def _frontend(items: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    return next(
        (i, o)
        for i, o in enumerate(items)
        if o["kind"] == "Pod" and o["metadata"]["name"].startswith("frontend")
    )


def _set_namespace(value: str):
    def change(pod: dict[str, Any]) -> None:
        pod["metadata"]["namespace"] = value

    return change


def _set_label(value: str):
    def change(pod: dict[str, Any]) -> None:
        pod["metadata"]["labels"]["app"] = value

    return change


BAD = {
    "quote-namespace": (_set_namespace('a"b'), """(Pod 'a"b'/{name}): metadata.namespace: """),
    "newline-namespace": (_set_namespace("a\nb"), r"(Pod 'a\nb'/{name}): metadata.namespace: "),
    "dotdot-namespace": (_set_namespace("../x"), "(Pod '../x'/{name}): metadata.namespace: "),
    "upper-namespace": (_set_namespace("Shop"), "(Pod Shop/{name}): metadata.namespace: "),
    "quote-label": (_set_label('a"b'), "(Pod shop/{name}): metadata.labels['app']: "),
    "newline-label": (_set_label("a\nb"), "(Pod shop/{name}): metadata.labels['app']: "),
    "long-label": (_set_label("x" * 64), "(Pod shop/{name}): metadata.labels['app']: "),
}


def _write(tmp_path: Path, items: list[dict[str, Any]]) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def _argv(command: str, inventory: Path, tmp_path: Path) -> list[str]:
    if command == "recommend":
        return [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(inventory),
            "--out",
            str(tmp_path / "out"),
        ]
    return [
        "shadow",
        "--policies",
        str(POLICY),
        "--inventory",
        str(inventory),
        "--flows",
        str(HUBBLE),
        "--report",
        str(tmp_path / "out"),
    ]


@pytest.mark.parametrize("command", ["recommend", "shadow"])
@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_inventory_exits_2_with_one_line_naming_the_item(tmp_path, capsys, command, kind):
    items = shop_items()
    index, pod = _frontend(items)
    change, expected = BAD[kind]
    change(pod)
    inventory = _write(tmp_path, items)
    assert main(_argv(command, inventory, tmp_path)) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    prefix = f"error: {inventory}: item {index} " + expected.format(name=pod["metadata"]["name"])
    assert err.startswith(prefix), err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_recommend_reads_a_service_with_target_port_zero(tmp_path, capsys):
    """Issue 11: one Service with ``targetPort: 0`` refused the whole inventory."""
    items = shop_items()
    dns = next(o for o in items if o["kind"] == "Service" and o["metadata"]["name"] == "kube-dns")
    for port in dns["spec"]["ports"]:
        port["targetPort"] = 0
        del port["protocol"]
    dns["spec"]["ports"][0]["protocol"] = "UDP"
    code = main(_argv("recommend", _write(tmp_path, items), tmp_path))
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "out").is_dir()
