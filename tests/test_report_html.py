"""``netpol report``: the HTML page, its graph in a real headless Chromium, determinism."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from recommender.cli.parser import main
from tests.conftest import GOLDEN

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
#: A recommend tree (policies with evidence) and a tighten folder (policies + TIGHTEN.json).
RECOMMEND = GOLDEN / "recommend" / "shop"
TIGHTEN = GOLDEN / "tighten" / "fixture"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", "--from", str(RECOMMEND), str(TIGHTEN), "--out", str(out)]) == 0
    return out


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the distribution's Chromium; a missing browser fails the test (CI installs it)."""
    assert Path(CHROMIUM).exists(), (
        "chromium missing: `make` installs it (apt-get install chromium)"
    )
    argv = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)


def test_graph_nodes_and_edges_render_in_headless_chromium(report, tmp_path):
    dom = _chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    assert "<svg" in dom
    nodes = set(re.findall(r'<g id="node-n\d+-([^"]+)" class="node', dom))
    assert {"shop-frontend", "shop-cart", "data-db"} <= nodes
    assert re.search(r'<g id="edge-\d+" class="edge edge_allowed"', dom)
    # tighten's semantic diff: newly allowed edges, each linking to its explanation row
    links = re.findall(r'class="edge edge_newly_allowed".*?href="#(change-[\d-]+)"', dom, re.S)
    assert links
    assert all(f'<tr id="{a}">' in dom for a in links)


def test_screenshot_is_kept(report, tmp_path):
    shot = tmp_path / "report.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", report.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_page_is_self_contained_and_links_policies(report):
    page = report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not fetch anything"
    assert '<section id="policy-shop-cart">' in page
    assert "first-seen" in page  # the evidence annotations
    assert "connections" in page
    assert report.with_suffix(".svg").read_bytes().lstrip().startswith(b"<?xml")
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_output_is_deterministic_and_not_overwritten(report, tmp_path, capsys):
    again = tmp_path / "again.html"
    assert main(["report", "--from", str(RECOMMEND), str(TIGHTEN), "--out", str(again)]) == 0
    assert again.read_bytes() == report.read_bytes()
    again.write_text("mine")
    assert main(["report", "--from", str(RECOMMEND), "--out", str(again)]) == 2
    assert again.read_text() == "mine"
    assert f"error: {again}: already exists" in capsys.readouterr().err


def test_shadow_denied_edges_are_red_and_linked(tmp_path):
    shadow = tmp_path / "shadow.json"
    row = {
        "src_workload": "shop/deployment/frontend",
        "dst_workload": "shop/deployment/redis",
        "port": 6379,
        "protocol": "TCP",
        "connections": 3,
        "denied_by": "ingress",
        "policies": ["shop/redis"],
    }
    shadow.write_text(f'{{"would_be_denied": [{__import__("json").dumps(row)}], "totals": {{}}}}')
    out = tmp_path / "r.html"
    assert main(["report", "--from", str(RECOMMEND), str(shadow), "--out", str(out)]) == 0
    page = out.read_text()
    assert re.search(r'class="edge edge_would_deny".*?href="#deny-0"', page, re.S)
    assert '<tr id="deny-0">' in page


def test_a_folder_with_nothing_to_show_is_an_input_error(tmp_path, capsys):
    assert main(["report", "--from", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "no NetworkPolicies" in capsys.readouterr().err
