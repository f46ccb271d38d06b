"""Where each model runs: execution providers, intra-op threads and the scoring pool, from configuration.

The pipeline definition's ``placement`` section (data, like the rest of it)::

    "placement": {
      "profile": "auto",                      # "auto": "gpu" when CUDA is available here, else "cpu"; or a name
      "profiles": {
        "cpu": {"tree":  {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "pool": "scoring"},
                "dense": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "pool": "scoring"}},
        "gpu": {"tree":  {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "pool": "scoring"},
                "dense": {"providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], "pool": "gpu"}}
      },
      "pools": {"scoring": 0, "gpu": 1},      # threads per pool; 0: one per core
      "models": {"*_gbdt*": "tree", "*": "dense"}   # first matching pattern wins
    }

Rules:

1. A class names providers in priority order; every one must be available on this host when its model loads
   (ONNX Runtime would otherwise fall back to CPU silently; :class:`gateway.runtime.ModelRuntime` refuses instead).
2. ``profile: auto`` picks ``gpu`` only when ``CUDAExecutionProvider`` is among the host's providers and a ``gpu``
   profile exists; the choice is a pure function of the provider list (tested here without a GPU).
3. Full-scoring tasks of models in one pool run on that pool's threads; separate pools keep, say, GPU-bound models
   from queueing behind CPU-bound trees.

What has run where: the CPU profile is what every test and benchmark here runs; the GPU profile's selection and
option building are tested on CPU, but no model has been scored on a GPU on these machines (none is available).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.options import RuntimeOptions

__all__ = ["DEFAULT_PLACEMENT", "ModelClass", "Placement", "PlacementError"]


class PlacementError(ValueError):
    """The placement section is malformed, or names a class, pool or profile that does not exist."""


@dataclass(frozen=True)
class ModelClass:
    providers: tuple[str, ...]
    intra_op_threads: int
    pool: str


@dataclass(frozen=True)
class Placement:
    profile: str
    classes: Mapping[str, ModelClass]
    pools: Mapping[str, int]
    rules: tuple[tuple[str, str], ...]

    @classmethod
    def from_dict(cls, doc: Any, available_providers: Sequence[str]) -> Placement:
        """Parse ``doc`` and resolve its profile against ``available_providers`` (rule 2)."""
        try:
            profiles = doc["profiles"]
            wanted = str(doc.get("profile", "auto"))
            if wanted == "auto":
                wanted = "gpu" if "CUDAExecutionProvider" in available_providers and "gpu" in profiles else "cpu"
            if wanted not in profiles:
                raise PlacementError(f"placement profile {wanted!r} is not defined; profiles: {sorted(profiles)}")
            classes = {
                str(name): ModelClass(
                    tuple(str(p) for p in c["providers"]), int(c.get("intra_op_threads", 1)), str(c["pool"])
                )
                for name, c in profiles[wanted].items()
            }
            pools = {str(k): int(v) for k, v in doc["pools"].items()}
            rules = tuple((str(k), str(v)) for k, v in doc["models"].items())
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, PlacementError):
                raise
            raise PlacementError(f"placement: {exc!r}") from exc
        placement = cls(wanted, classes, pools, rules)
        placement._check()
        return placement

    def _check(self) -> None:
        for pattern, name in self.rules:
            if name not in self.classes:
                raise PlacementError(
                    f"placement rule {pattern!r} names class {name!r}, not in profile {self.profile!r}"
                )
        for name, c in self.classes.items():
            if c.pool not in self.pools:
                raise PlacementError(f"class {name!r} runs on pool {c.pool!r}, which 'pools' does not size")
            if not c.providers:
                raise PlacementError(f"class {name!r} names no execution provider")
            if c.intra_op_threads < 0:
                raise PlacementError(f"class {name!r}: intra_op_threads must be >= 0")
        for pool, threads in self.pools.items():
            if threads < 0:
                raise PlacementError(f"pool {pool!r}: threads must be >= 0 (0: one per core)")

    def class_of(self, model: str) -> ModelClass:
        for pattern, name in self.rules:
            if fnmatch.fnmatchcase(model, pattern):
                return self.classes[name]
        raise PlacementError(f"no placement rule matches model {model!r}")

    def options_for(self, model: str, base: RuntimeOptions | None = None) -> RuntimeOptions:
        """``base`` (default options) with the model's class's providers and intra-op threads."""
        c = self.class_of(model)
        base = base or RuntimeOptions()
        return RuntimeOptions(
            intra_op_threads=c.intra_op_threads,
            inter_op_threads=base.inter_op_threads,
            allow_spinning=base.allow_spinning,
            graph_optimization=base.graph_optimization,
            execution_mode=base.execution_mode,
            providers=c.providers,
            max_batch=base.max_batch,
            nonfinite=base.nonfinite,
            nonfinite_replacement=base.nonfinite_replacement,
            session_config=base.session_config,
        )

    def pool_threads(self, pool: str, cores: int) -> int:
        return self.pools[pool] or cores

    def pools_for(self, models: Iterable[str]) -> dict[str, list[str]]:
        """Models grouped by the pool their class runs on, in the given order."""
        out: dict[str, list[str]] = {}
        for m in models:
            out.setdefault(self.class_of(m).pool, []).append(m)
        return out


#: Everything on CPU, one pool sized to the cores: what the demo runs when its definition has no placement.
DEFAULT_PLACEMENT: Mapping[str, Any] = {
    "profile": "cpu",
    "profiles": {"cpu": {"cpu": {"providers": ["CPUExecutionProvider"], "intra_op_threads": 1, "pool": "scoring"}}},
    "pools": {"scoring": 0},
    "models": {"*": "cpu"},
}
