"""Shared test fixtures and paths."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The shared sample data lies beside the checkout (../shared/samples), in CI too.
SAMPLES = ROOT.parent / "shared" / "samples"
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files instead of comparing"
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def samples() -> Path:
    assert SAMPLES.is_dir(), f"shared samples not found at {SAMPLES}"
    return SAMPLES


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small webshop simulation (1h windows, 5% of the rates): train/fresh flows, truth."""
    from recommender.simulate import SimOptions, load_topology, run_simulation

    out = tmp_path_factory.mktemp("sim") / "webshop"
    run_simulation(load_topology("webshop"), out,
                   SimOptions(seed=5, window_s=3600, rate_scale=0.05), show_progress=False)
    return out
