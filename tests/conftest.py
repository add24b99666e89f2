"""Shared test fixtures and paths."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Real sample data written by real tools, copied into the repository with its
#: attribution (tests/samples/SOURCES.md), so the suite passes from a clone anywhere.
SAMPLES = ROOT / "tests" / "samples"
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"


#: True when the spark extra is installed (as the root conftest.py decides for doctests).
HAVE_SPARK = all(importlib.util.find_spec(m) is not None for m in ("pyspark", "sqlglot"))
#: Fixtures that start Spark: a test using one needs the spark extra.
SPARK_FIXTURES = frozenset({"spark", "engines"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that needs the spark extra (``spark`` marker, or a Spark fixture);
    skip those, naming the extra, only when it is not installed."""
    skip = pytest.mark.skip(reason="needs the spark extra: pip install -e '.[spark]'")
    for item in items:
        if SPARK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.spark)
        if not HAVE_SPARK and item.get_closest_marker("spark") is not None:
            item.add_marker(skip)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden", action="store_true", help="rewrite golden files instead of comparing"
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


@pytest.fixture(scope="session")
def samples() -> Path:
    assert SAMPLES.is_dir(), f"samples not found at {SAMPLES}"
    return SAMPLES


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small webshop simulation (1h windows, 5% of the rates): train/fresh flows, truth."""
    from recommender.simulate import SimOptions, load_topology, run_simulation

    out = tmp_path_factory.mktemp("sim") / "webshop"
    run_simulation(
        load_topology("webshop"),
        out,
        SimOptions(seed=5, window_s=3600, rate_scale=0.05),
        show_progress=False,
    )
    return out


@pytest.fixture(scope="module")
def spark():
    """A local Spark session (``local[2]``) for one test module (the Spark engine tests)."""
    from pyspark.sql import SparkSession

    from recommender.observe.engines.spark_sql import SESSION_CONF

    session = (
        SparkSession.builder.master("local[2]")
        .appName("netpol-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    for key, value in SESSION_CONF.items():
        session.conf.set(key, value)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def engines(spark):
    """``(EmbeddedEngine(), SparkEngine(session=spark))``."""
    from recommender.observe.engines.embedded import EmbeddedEngine
    from recommender.observe.engines.spark import SparkEngine

    return EmbeddedEngine(), SparkEngine(session=spark)
