"""The benchmark suites, by name. Each module defines ``SUITE``; importing is deferred so that
``python -m perf list`` does not load ONNX Runtime or build models.

Two kinds:

* ``SUITES``: :class:`perf.harness.Suite` lists of cases that the Python harness forks, warms up,
  measures and merges.
* ``EXTERNAL``: :class:`ExternalSuite` runs whose measuring is done by another harness (JMH runs
  its own forks and iterations); ``python -m perf run NAME`` only writes their JSON and Markdown.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from perf.harness import Suite

__all__ = ["EXTERNAL", "SUITES", "ExternalSuite", "load_external", "load_suite"]

SUITES: dict[str, str] = {
    "scoring": "perf.suites.scoring",
    "bridge": "perf.suites.bridge",
    "py4j": "perf.suites.py4j",
    "monitoring": "perf.suites.monitoring",
    "grpc": "perf.suites.grpc",
    "batching": "perf.suites.batching",
    "features": "perf.suites.features",
}

EXTERNAL: dict[str, str] = {
    "jmh": "perf.suites.jmh",
    "hotswap": "perf.suites.hotswap",
    "rollout": "perf.suites.rollout",
    "rotation": "perf.suites.rotation",
    "pipeline": "perf.suites.pipeline",
}


@dataclass(frozen=True)
class ExternalSuite:
    """A suite measured by another harness. ``run(quick, forks, show_progress)`` returns the document
    (:func:`perf.report.document_rows`); ``forks`` overrides the plan's when not None. ``notes(doc)``
    is Markdown appended after the standard tables (diagnostics of the suite's own)."""

    name: str
    description: str
    run: Callable[[bool, int | None, bool], dict[str, Any]]
    notes: Callable[[Mapping[str, Any]], str] = field(default=lambda doc: "")


def load_suite(name: str) -> Suite:
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; suites: {', '.join(sorted(SUITES))}")
    suite = importlib.import_module(SUITES[name]).SUITE
    assert isinstance(suite, Suite)
    return suite


def load_external(name: str) -> ExternalSuite:
    if name not in EXTERNAL:
        raise KeyError(f"unknown external suite {name!r}; external suites: {', '.join(sorted(EXTERNAL))}")
    suite = importlib.import_module(EXTERNAL[name]).SUITE
    assert isinstance(suite, ExternalSuite)
    return suite
