"""``Engine``: the one call every transport makes: score model ``name`` on these buffers.

The JPype host, the Py4J server and the gRPC service each turn their wire into
``engine.score(name, x, out)`` (or ``engine.run`` for multi-input models) and map
:mod:`gateway.errors` back out.

Models are versioned (:mod:`models.manager`): ``name`` reaches the live version of a model and
``name@version`` pins one version; several versions may serve at once. Every call holds a handle on
the version it runs, so a hot-swap never closes a session under a running call: the swap switches
new calls to the new version, the old one finishes its calls, then closes.

Two ways in:

* :meth:`Engine.from_store` serves packages from an artifact store (:mod:`models.store`); the
  version manager loads, warms and swaps them as :attr:`Engine.manager`'s aspired versions change.
* ``Engine(runtimes)``, :meth:`Engine.add` and :meth:`Engine.from_directory` serve runtimes loaded by
  the caller, each as the live (and only) version of its name.

Thread-safety: every method may be called from any thread. Scoring threads take no engine-wide lock:
a lookup reads an immutable snapshot and holds one handle for the duration of the call.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.errors import ModelLoadError, ModelNotFoundError
from gateway.loader import load_package, release_free_memory, validated_package, warm_runtime
from gateway.options import RuntimeOptions
from gateway.runtime import ModelRuntime
from models.handle import Harness
from models.ids import ModelId
from models.manager import ManagerOptions, VersionManager
from models.package import Package
from models.registry import RoutingKey, VersionNotFoundError
from models.store import ArtifactStore

__all__ = ["Engine", "MonitorHook", "ScoreObserver"]


class ScoreObserver(Protocol):
    """Sees each un-pinned :meth:`Engine.score` call after it answered (the rollout controller's seam).

    Runs on the serving thread: it must not block and must copy whatever it keeps (``x`` and ``scores`` belong to
    the caller). ``name`` is the reference the caller passed; ``version`` the version that answered.
    """

    def observe(self, name: str, version: str, x: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> None: ...

    def failed(self, name: str, version: str, error: Exception) -> None:
        """The call on ``version`` raised ``error`` (it propagates to the caller after this returns)."""


class MonitorHook(Protocol):
    """Sees every :meth:`Engine.score` call, pinned or not, with the scoring call's own latency (the monitoring
    seam: :class:`gateway.monitoring.Monitor`). Same rules as :class:`ScoreObserver`: on the serving thread, bounded,
    copies what it keeps, never raises. ``model`` is the model's name (without ``@version``)."""

    def observe(
        self, model: str, version: str, x: np.ndarray[Any, Any], out: np.ndarray[Any, Any], latency_ns: int
    ) -> None: ...

    def failed(self, model: str, version: str, error: Exception) -> None: ...


class Engine:
    """Served models by name (live version) and by ``name@version``."""

    #: The rollout observer (:class:`gateway.rollout.RolloutController` installs itself); ``None``: no cost.
    rollouts: ScoreObserver | None = None
    #: The monitoring hook (:meth:`gateway.monitoring.Monitor.attach` installs it); ``None``: no cost.
    monitor: MonitorHook | None = None

    def __init__(self, runtimes: Iterable[ModelRuntime] = (), *, manager: VersionManager[ModelRuntime] | None = None):
        self.manager: VersionManager[ModelRuntime] = manager or VersionManager(
            None, _no_loader, options=ManagerOptions(interval_s=0.0)
        )
        for runtime in runtimes:
            self.add(runtime)

    @classmethod
    def from_store(
        cls,
        store: ArtifactStore | str | Path,
        options: RuntimeOptions | None = None,
        manager_options: ManagerOptions | None = None,
        *,
        require_validation: bool = True,
        serve_latest: bool = True,
        timeout: float = 120.0,
    ) -> Engine:
        """Serve packages from ``store``.

        With ``require_validation`` (the default) a version loads only if the store holds a passing validation
        report for it (``publish`` writes one); any other version goes to ``ERROR`` and the previous one serves on.
        With ``serve_latest``, aspire the latest version of every published model and wait (up to ``timeout``
        seconds) until each has loaded or failed; :meth:`VersionManager.status` says which.
        """
        store = store if isinstance(store, ArtifactStore) else ArtifactStore(store)
        manager = VersionManager(
            functools.partial(validated_package, store) if require_validation else store.get,
            lambda package: load_package(package, options),
            warm_runtime,
            manager_options or ManagerOptions(),
            after_unload=release_free_memory,
        )
        engine = cls(manager=manager)
        if serve_latest:
            for name in store.names():
                latest = store.latest(name)
                if latest is not None:
                    manager.set_aspired(name, [latest])
            manager.converge(timeout)
        return engine

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
        """Serve ``runtime`` as the live and only version of its name; any other version of that name drains and
        closes."""
        self.manager.install(ModelId(runtime.name, runtime.version), runtime)

    def names(self) -> tuple[str, ...]:
        """Names with a live version, sorted."""
        return self.manager.registry.snapshot.names()

    def refs(self) -> tuple[str, ...]:
        """Every serving ``name@version``."""
        return self.manager.registry.snapshot.refs()

    def _resolve_error(self, exc: VersionNotFoundError) -> ModelNotFoundError:
        return ModelNotFoundError(exc.ref, exc.known)

    def runtime(self, name: str) -> ModelRuntime:
        """The runtime ``name`` (live) or ``name@version`` reaches now; :class:`ModelNotFoundError` if none.

        For inspection (signatures, versions) and for callers that bind to one version for their lifetime: this
        holds no handle, so a runtime kept across a swap may be closed under the holder (its calls then raise
        :class:`gateway.errors.UnavailableError`). Score through :meth:`score`, :meth:`run` or :meth:`acquire`.
        """
        try:
            harness = self.manager.registry.resolve(name)
        except VersionNotFoundError as exc:
            raise self._resolve_error(exc) from None
        value = harness.value
        if value is None:  # unloaded between the lookup and now
            raise ModelNotFoundError(name, self.names())
        return value

    def acquire(self, name: str, key: RoutingKey | None = None) -> Harness[ModelRuntime]:
        """Hold the version ``name`` reaches: use ``harness.value``, then call ``harness.release()`` once."""
        try:
            return self.manager.acquire(name, key)
        except VersionNotFoundError as exc:
            raise self._resolve_error(exc) from None

    def score(
        self,
        name: str,
        x: np.ndarray[Any, Any],
        out: np.ndarray[Any, Any] | None = None,
        key: RoutingKey | None = None,
    ) -> np.ndarray[Any, Any]:
        """Score ``x`` with model ``name`` (or ``name@version``) into ``out``; see :meth:`ModelRuntime.score`.

        ``key`` (e.g. the user id) makes a canary rollout sticky: the same key reaches the same version. With a
        rollout observer installed (:attr:`rollouts`), the scores of an un-pinned call are handed to it after the
        call; it copies what it keeps and returns at once (shadow and canary comparisons run off this path).
        """
        scores, _, _ = self._score(name, x, out, key, self.monitor)
        return scores

    def score_served(
        self,
        name: str,
        x: np.ndarray[Any, Any],
        out: np.ndarray[Any, Any] | None = None,
        key: RoutingKey | None = None,
        *,
        observe: bool = False,
    ) -> tuple[np.ndarray[Any, Any], str, int]:
        """:meth:`score` that also says which version served (a canary or the live one) and the call's latency in
        nanoseconds. Unless ``observe``, the monitoring hook's ``observe`` is not called: for a caller that
        observes its calls itself (the pipeline stages a whole request's calls at once); failures still reach its
        ``failed``."""
        return self._score(name, x, out, key, self.monitor if observe else None)

    def _score(
        self,
        name: str,
        x: np.ndarray[Any, Any],
        out: np.ndarray[Any, Any] | None,
        key: RoutingKey | None,
        observe: MonitorHook | None,
    ) -> tuple[np.ndarray[Any, Any], str, int]:
        harness = self.acquire(name, key)
        version = harness.id.version
        t0 = time.perf_counter_ns()
        try:
            scores = harness.value.score(x, out)  # type: ignore[union-attr]  # READY harnesses hold a value
        except Exception as exc:
            self._failed(name, harness.id, exc)
            raise
        finally:
            harness.release()
        latency = time.perf_counter_ns() - t0
        if observe is not None:
            observe.observe(harness.id.name, version, x, scores, latency)
        observer = self.rollouts
        if observer is not None:
            observer.observe(name, version, x, scores)
        return scores, version, latency

    def run(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None = None,
        key: RoutingKey | None = None,
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run model ``name`` (or ``name@version``) on named ``inputs``; see :meth:`ModelRuntime.run`.

        The general path (several inputs or outputs, other dtypes: the gRPC endpoint's). ``key`` routes as in
        :meth:`score`. The monitoring hook sees the call as it sees :meth:`score`, with its latency, the first
        input as ``x`` and the first output as the scores, and its failures. The rollout observer sees its
        failures (a canary candidate that keeps failing is rolled back) but not its outputs: canary and shadow
        comparisons score one input.
        """
        return self.run_served(name, inputs, outputs, key)[0]

    def run_served(
        self,
        name: str,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None = None,
        key: RoutingKey | None = None,
    ) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
        """:meth:`run` that also says which version served."""
        harness = self.acquire(name, key)
        version = harness.id.version
        t0 = time.perf_counter_ns()
        try:
            result = harness.value.run(inputs, outputs)  # type: ignore[union-attr]  # READY harnesses hold a value
        except Exception as exc:
            self._failed(name, harness.id, exc)
            raise
        finally:
            harness.release()
        latency = time.perf_counter_ns() - t0
        monitor = self.monitor
        if monitor is not None and inputs and result:
            x = next(iter(inputs.values()))
            out = next(iter(result.values()))
            if x.ndim and out.ndim and out.dtype.kind in "fiub":  # a batch of numbers: what the hook counts
                monitor.observe(harness.id.name, version, x, out, latency)
        return result, version

    def _failed(self, ref: str, served: ModelId, exc: Exception) -> None:
        """A call of ``ref`` that ``served`` answered raised: the rollout observer counts it against a canary
        candidate (which is rolled back after a few), the monitoring hook by exception kind."""
        if self.rollouts is not None:
            self.rollouts.failed(ref, served.version, exc)
        monitor = self.monitor
        if monitor is not None:
            monitor.failed(served.name, served.version, exc)

    def close(self) -> None:
        """Stop the manager; every version drains, then closes."""
        self.manager.close()

    def __len__(self) -> int:
        return len(self.names())


def _no_loader(package: Package) -> ModelRuntime:
    raise ModelLoadError(str(package.id), "this engine serves installed runtimes only (no package loader)")
