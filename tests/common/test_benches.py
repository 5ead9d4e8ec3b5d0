"""Every bench still imports: they reach into the server's modules (bulk storage, partitions,
the runner), and a rename there breaks `make bench` long after the tests have passed. Running
them is `make bench`'s (they take minutes and print figures, asserting no time)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bench

BENCHES = sorted(m.name for m in pkgutil.iter_modules(bench.__path__))


def test_the_benches_are_found() -> None:
    assert {"ingest", "close_due", "import_meters", "track_partitions"} <= set(BENCHES)


@pytest.mark.parametrize("name", BENCHES)
def test_a_bench_imports(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__, f"bench.{name} says what it measures"
