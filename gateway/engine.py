"""``Engine``: the one call every transport makes: score model ``name`` on these buffers.

The JPype host, the Py4J server and the gRPC service each turn their wire into
``engine.score(name, x, out)`` (or ``engine.run`` for multi-input models) and map
:mod:`gateway.errors` back out. For now the engine holds one runtime per model name; the model
lifecycle replaces the plain mapping with versioned handles, behind the same calls.

Thread-safety: lookups read an immutable dict that :meth:`Engine.add` replaces whole, so scoring
threads never take a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from gateway.errors import ModelNotFoundError
from gateway.options import RuntimeOptions
from gateway.runtime import ModelRuntime

__all__ = ["Engine"]


class Engine:
    """Loaded models by name."""

    def __init__(self, runtimes: Iterable[ModelRuntime] = ()) -> None:
        self._lock = threading.Lock()
        self._models: Mapping[str, ModelRuntime] = {r.name: r for r in runtimes}

    @classmethod
    def from_directory(cls, root: str | Path, options: RuntimeOptions | None = None) -> Engine:
        """Load every ``<root>/<name>/<version>/model.onnx`` (highest version per name).

        Version directories sort numerically where they are numbers. Raises
        :class:`gateway.errors.ModelLoadError` for the first model that fails to load.
        """
        root = Path(root)
        engine = cls()
        for model_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            versions = [v for v in model_dir.iterdir() if (v / "model.onnx").is_file()]
            if not versions:
                continue
            latest = max(versions, key=lambda v: (v.name.isdigit(), int(v.name) if v.name.isdigit() else 0, v.name))
            engine.add(
                ModelRuntime.load(latest / "model.onnx", name=model_dir.name, version=latest.name, options=options)
            )
        return engine

    def add(self, runtime: ModelRuntime) -> None:
        """Serve ``runtime`` under its name, replacing any model of that name."""
        with self._lock:
            models = dict(self._models)
            models[runtime.name] = runtime
            self._models = models

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._models))

    def runtime(self, name: str) -> ModelRuntime:
        """The runtime serving ``name``; :class:`ModelNotFoundError` if none."""
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFoundError(name, self.names()) from None

    def score(
        self, name: str, x: np.ndarray[Any, Any], out: np.ndarray[Any, Any] | None = None
    ) -> np.ndarray[Any, Any]:
        """Score ``x`` with model ``name`` into ``out``; see :meth:`ModelRuntime.score`."""
        return self.runtime(name).score(x, out)

    def run(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None = None,
    ) -> dict[str, np.ndarray[Any, Any]]:
        return self.runtime(name).run(inputs, outputs)

    def close(self) -> None:
        with self._lock:
            models, self._models = self._models, {}
        for runtime in models.values():
            runtime.close()

    def __len__(self) -> int:
        return len(self._models)
