"""How the gateway loads a package for the version manager (:mod:`models.manager`), which knows nothing of ONNX.

* :func:`validated_package` is the package source when only validated versions may serve: the store's package,
  provided the store holds a passing validation report for exactly that content.
* :func:`load_package` builds the :class:`~gateway.runtime.ModelRuntime` and refuses a manifest that lies about
  the graph's signature.
* :func:`warm_runtime` runs the package's reference inputs through the new runtime before it serves.
* :func:`release_free_memory` runs after each unload.

Each runs on the manager's load pool, never on a serving thread; each raises
:class:`~gateway.errors.ModelLoadError` (or lets the runtime's error through) and the version goes to ``ERROR``.
"""

from __future__ import annotations

import ctypes
import functools
import json
from typing import Any

import numpy as np

from gateway.errors import ModelLoadError
from gateway.options import RuntimeOptions
from gateway.runtime import ModelRuntime
from models.package import Package
from models.store import ArtifactStore

__all__ = ["load_package", "release_free_memory", "validated_package", "warm_runtime"]


def validated_package(store: ArtifactStore, name: str, version: str) -> Package:
    """``store.get(name, version)``, if the store holds a passing validation report of that very content."""
    package = store.get(name, version)
    report = store.report(name, version)
    if report is None:
        raise ModelLoadError(f"{name}@{version}", "not validated: publish it through the validation gates first")
    verdict = json.loads(report)
    if verdict.get("digest") != package.digest:
        raise ModelLoadError(f"{name}@{version}", "its validation report is for other content (digest differs)")
    if verdict.get("passed") is not True:
        raise ModelLoadError(f"{name}@{version}", "its validation report says it failed the gates")
    return package


def load_package(package: Package, options: RuntimeOptions | None = None) -> ModelRuntime:
    """A runtime for ``package``: ONNX Runtime session, then the session's signature checked against the manifest.

    Raises :class:`ModelLoadError` when the model does not load or its signature differs from what the
    manifest declares (a manifest that lies is refused before it serves).
    """
    m = package.manifest
    runtime = ModelRuntime.load(package.onnx_path, name=m.name, version=m.version, options=options)
    declared = [(s.name, s.dtype, tuple(s.shape)) for s in (*m.inputs, *m.outputs)]
    actual = [
        (s.name, s.dtype.name, tuple(-1 if d is None else d for d in s.dims))
        for s in (*runtime.inputs, *runtime.outputs)
    ]
    if declared != actual:
        runtime.close()
        raise ModelLoadError(
            f"{m.name}@{m.version}", f"graph signature {actual} differs from the manifest's {declared}"
        )
    return runtime


def warm_runtime(runtime: ModelRuntime, package: Package) -> None:
    """Run the package's reference inputs through ``runtime`` at its declared batch, so the first request does not
    pay for lazy allocation; fails (and the version does not serve) if the model errors on them."""
    inputs = package.reference_inputs()
    batch = package.manifest.latency_budget.batch
    rows = np.ascontiguousarray(inputs[np.arange(batch) % len(inputs)])
    # Every reference row goes through the model; a separate run of all of them only when the declared batch does
    # not already hold each one (a run is Python work with the GIL held, next to the serving threads).
    runs = (rows, rows[:1]) if batch >= len(inputs) else (inputs, rows, rows[:1])
    for x in runs:
        if runtime.inputs and len(runtime.inputs) == 1 and len(runtime.outputs) == 1:
            runtime.score(np.ascontiguousarray(x))
        else:
            runtime.run({runtime.inputs[0].name: np.ascontiguousarray(x)})


@functools.cache
def _malloc_trim() -> Any:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to hand back
        return None
    trim.argtypes = [ctypes.c_size_t]
    return trim


def release_free_memory() -> None:
    """Hand the heap that closed sessions freed back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    Without it glibc keeps the freed memory mapped, and a process that swaps its models often grows by about 6%
    before it plateaus. Runs on the manager's load pool after each unload, never on a serving thread.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
