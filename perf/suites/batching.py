"""Suite ``batching``: which batching strategy wins where, for the request pipeline's defaults.

Same demo models, same rows, cases interleaved iteration by iteration in each fork (one thread, ONNX Runtime with
the serving options: one intra-op thread, spinning off):

* **Fusing models that share an input** (the pipeline's full-scoring GBDTs all read the same 64 columns):
  ``per_model`` runs 6 GBDT sessions one after another on 200 rows; ``fused`` runs one session whose graph holds the
  6 models side by side on one input (``onnx.compose.add_prefix``, outputs bit-identical).
  Figure ``fused_over_per_model_p50``.
* **Cross-request batching of small requests**: ``per_request`` scores 8 requests of 25 rows in 8 runs;
  ``cross_request`` copies them into one 200-row buffer and scores it in one run (what the JVM bridge's
  micro-batching does). Figures ``cross_request_over_per_request_p50`` on the MLP (cheap per row: the fixed cost
  of a run dominates) and ``..._gbdt`` (per-row cost dominates).

Reading (perf/RESULTS.md has the numbers): the pipeline keeps one run per model per stage (fusing saves a few
percent at most and would tie the fused models' fallback tiers together); cross-request batching is the default of
the JVM bridge's lanes and pays most for small requests to cheap models.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from perf.harness import Case, Op, Result, Suite
from perf.suites.scoring import DEMO_DIR, _prepare

GBDTS = (
    "pctr_gbdt",
    "pctr_gbdt_obj_cpc",
    "pctr_gbdt_obj_cpa",
    "pctr_gbdt_obj_awareness",
    "pctr_gbdt_region_na",
    "pctr_gbdt_region_eu",
)
ROWS = 200
SMALL = 25
REQUESTS = ROWS // SMALL


def _path(model: str) -> Path:
    (version,) = sorted((DEMO_DIR / "models" / model).iterdir())
    return version / "model.onnx"


def _rows(rows: int, seed: int = 99) -> np.ndarray[Any, Any]:
    from models.demo import demo_features, load_demo_manifests

    manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}["pctr_gbdt"]
    return np.ascontiguousarray(demo_features(DEMO_DIR, manifest, rows=rows, seed=seed))


def _session(model_bytes: bytes | str) -> Any:
    import onnxruntime as ort

    from gateway.options import RuntimeOptions
    from gateway.runtime import session_options

    options = session_options(RuntimeOptions())
    return ort.InferenceSession(model_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def fuse(paths: list[Path]) -> bytes:
    """One model running every model in ``paths`` on their shared input, outputs ``m{k}_<name>``."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(str(p)) for p in paths]
    nodes, inits, outputs = [], [], []
    for k, m in enumerate(models):
        g = compose.add_prefix(m, prefix=f"m{k}_", rename_inputs=False).graph
        nodes += list(g.node)
        inits += list(g.initializer)
        outputs += list(g.output)
    graph = helper.make_graph(nodes, "fused", [models[0].graph.input[0]], outputs, inits)
    fused = helper.make_model(graph, opset_imports=list(models[0].opset_import))
    fused.ir_version = models[0].ir_version
    onnx.checker.check_model(fused)
    return bytes(fused.SerializeToString())


def _per_model() -> Op:
    sessions = [_session(str(_path(m))) for m in GBDTS]
    x = _rows(ROWS)

    def op() -> object:
        return [s.run(None, {"features": x}) for s in sessions]

    return op


def _fused() -> Op:
    session = _session(fuse([_path(m) for m in GBDTS]))
    x = _rows(ROWS)
    separate = [_session(str(_path(m))).run(None, {"features": x})[0] for m in GBDTS]
    together = session.run(None, {"features": x})
    if not all(np.array_equal(a, b) for a, b in zip(separate, together, strict=True)):
        raise AssertionError("the fused model's outputs differ from the separate models'")

    def op() -> object:
        return session.run(None, {"features": x})

    return op


def _per_request(model: str) -> Op:
    session = _session(str(_path(model)))
    parts = [_rows(SMALL, seed=k) for k in range(REQUESTS)]

    def op() -> object:
        return [session.run(None, {"features": p}) for p in parts]

    return op


def _cross_request(model: str) -> Op:
    session = _session(str(_path(model)))
    parts = [_rows(SMALL, seed=k) for k in range(REQUESTS)]
    staging = np.empty((ROWS, parts[0].shape[1]), np.float32)

    def op() -> object:
        for k, p in enumerate(parts):  # the copy into one buffer is part of the strategy's cost
            staging[k * SMALL : (k + 1) * SMALL] = p
        return session.run(None, {"features": staging})

    return op


def _cases(quick: bool) -> list[Case]:
    cases = [
        Case("per_model", {"models": len(GBDTS), "rows": ROWS}, _per_model, "fuse"),
        Case("fused", {"models": len(GBDTS), "rows": ROWS}, _fused, "fuse"),
    ]
    for model in ("pctr_mlp", "pctr_gbdt"):
        params = {"model": model, "requests": REQUESTS, "rows": SMALL}
        cases.append(Case("per_request", params, functools.partial(_per_request, model), f"small/{model}"))
        cases.append(Case("cross_request", params, functools.partial(_cross_request, model), f"small/{model}"))
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    p50 = {(r.name, r.params.get("model", "")): r.percentile_us(50.0) for r in results}
    return {
        "fused_over_per_model_p50": p50[("fused", "")] / p50[("per_model", "")],
        "cross_request_over_per_request_p50": p50[("cross_request", "pctr_mlp")] / p50[("per_request", "pctr_mlp")],
        "cross_request_over_per_request_p50_gbdt": (
            p50[("cross_request", "pctr_gbdt")] / p50[("per_request", "pctr_gbdt")]
        ),
    }


SUITE = Suite(
    name="batching",
    description="fusing models that share an input, cross-request batching of small requests",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
