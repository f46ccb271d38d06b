"""The benchmark suites, by name. Each module defines ``SUITE``; importing is deferred so that
``python -m perf list`` does not load ONNX Runtime or build models."""

from __future__ import annotations

import importlib

from perf.harness import Suite

__all__ = ["SUITES", "load_suite"]

SUITES: dict[str, str] = {
    "scoring": "perf.suites.scoring",
    "bridge": "perf.suites.bridge",
}


def load_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; suites: {', '.join(sorted(SUITES))}")
    suite = importlib.import_module(SUITES[name]).SUITE
    assert isinstance(suite, Suite)
    return suite
