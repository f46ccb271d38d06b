"""Suite ``scoring``: the scoring core against the floor, on the same demo model and inputs.

* **floor**: raw ONNX Runtime, ``run_with_iobinding`` on an ``IOBinding`` bound once to
  preallocated arrays: nothing validated, nothing rebound. No Python caller can go faster.
* **runtime**: :meth:`gateway.runtime.ModelRuntime.score` into a caller-owned output buffer,
  with every check on (dtype, shape, layout, byte order, batch bounds, NaN/inf screen).
* **runtime_open_loop**: the runtime offered a constant rate, latency from the intended send time.

Both use the same session options (one intra-op thread, spinning off) and the same realistic
feature rows from the marketplace, and run side by side in each fork. Models: the GBDT pCTR
(the full-scoring workhorse; figures ``runtime_over_floor_p50_b*``) and the MLP pCTR (the cheapest
full-scoring model, so the ratio shows the fixed overhead most; figures ``..._mlp``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from perf.floor import floor_op
from perf.harness import Case, Op, Result, Suite
from perf.loadgen import open_loop

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"
PRIMARY = "pctr_gbdt"
SECONDARY = "pctr_mlp"
BATCHES = (1, 64, 256)


def _prepare(quick: bool) -> None:
    from models.demo import build_demo

    build_demo(DEMO_DIR)


def _inputs(model: str, batch: int) -> tuple[Path, np.ndarray[Any, Any], int]:
    from models.demo import demo_features, load_demo_manifests

    manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}[model]
    x = demo_features(DEMO_DIR, manifest, rows=batch, seed=1234)
    return DEMO_DIR / "models" / model / manifest.version / manifest.onnx_file, x, x.shape[0]


def _floor(model: str, batch: int) -> Op:
    path, x, _ = _inputs(model, batch)
    return floor_op(path, x)


def _runtime(model: str, batch: int) -> Op:
    from gateway.runtime import ModelRuntime

    path, x, rows = _inputs(model, batch)
    rt = ModelRuntime.load(path, name=model)
    out = np.empty(rows, dtype=np.float32)
    score = rt.score

    def op() -> object:
        return score(x, out)

    return op


def _cases(quick: bool) -> list[Case]:
    cases: list[Case] = []
    for model in (PRIMARY, SECONDARY):
        for batch in BATCHES:
            params = {"model": model, "batch": batch}
            group = f"{model}/b{batch}"
            cases.append(Case("floor", params, functools.partial(_floor, model, batch), group))
            cases.append(Case("runtime", params, functools.partial(_runtime, model, batch), group))
    cases.append(
        Case(
            "runtime_open_loop",
            {"model": PRIMARY, "batch": 64, "rate_per_s": 2000},
            functools.partial(_runtime, PRIMARY, 64),
            runner=open_loop(2000.0),
        )
    )
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    p50 = {(r.name, r.params["model"], r.params["batch"]): r.percentile_us(50.0) for r in results}
    figures: dict[str, float] = {}
    for model, suffix in ((PRIMARY, ""), (SECONDARY, "_mlp")):
        for batch in BATCHES:
            floor = p50[("floor", model, batch)]
            figures[f"runtime_over_floor_p50_b{batch}{suffix}"] = p50[("runtime", model, batch)] / floor
            figures[f"floor_p50_us_b{batch}{suffix}"] = floor
    return figures


SUITE = Suite(
    name="scoring",
    description="ModelRuntime.score vs raw ONNX Runtime IOBinding (the floor), batch 1/64/256",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
