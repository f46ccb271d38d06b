"""Build the demo: marketplace tables, 24 trained models exported to ONNX with manifests, ad embeddings.

The layout under ``out`` is in :mod:`models.demo.layout`.

Rules:

1. Idempotent: when every catalog model has a manifest for this seed whose ONNX file's SHA-256 matches, and the data
   files exist, no model is rebuilt (``force=True`` rebuilds everything); the feature export for the Java ad server
   (:mod:`models.demo.export`, cheap) is written when it is missing or stale.
2. Holdout metrics are measured by running the exported ONNX bytes in onnxruntime on the holdout split of the model's
   segment, so they describe what serves.
3. Files are written to temporary names and renamed; a manifest is written after its model, so a manifest on disk
   always points at a complete artifact.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tqdm import tqdm

from models.demo import metrics, towers, trainers
from models.demo.catalog import CATALOG, EMBEDDING_DIM, FRAMEWORK, LATENCY_BUDGET, OWNER, Algo, ModelSpec
from models.demo.data import DemoData
from models.demo.export import ensure_export, write_export
from models.demo.layout import EMBEDDINGS_FILE, VERSION, data_dir, load_demo_manifests, model_dir, models_complete
from models.demo.onnx_graph import tower_model
from models.manifest import (
    Fallback,
    HoldoutMetrics,
    LatencyBudget,
    Manifest,
    OutputSemantics,
    TensorSpec,
    TrainingWindow,
    sha256_file,
)
from models.synth.tables import write_tables

RECALL_QUERIES: Final = 512

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Built:
    """A model the build produced (``seconds`` is None when it was already there)."""

    manifest: Manifest
    seconds: float | None


def _session(payload: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    return ort.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def _write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _publish(
    spec: ModelSpec,
    payload: bytes,
    *,
    out_dir: Path,
    data: DemoData,
    holdout: HoldoutMetrics,
    prior: float,
) -> Manifest:
    directory = model_dir(out_dir, spec.name)
    onnx_path = directory / "model.onnx"
    _write_bytes(onnx_path, payload)
    embedding = spec.algo in (Algo.USER_TOWER, Algo.AD_TOWER)
    output = (
        TensorSpec("embedding", "float32", (-1, EMBEDDING_DIM)) if embedding else TensorSpec("score", "float32", (-1,))
    )
    manifest = Manifest(
        name=spec.name,
        version=VERSION,
        task=spec.task,
        stage=spec.stage,
        framework=FRAMEWORK[spec.algo],
        inputs=(TensorSpec("features", "float32", (-1, len(spec.features))),),
        outputs=(output,),
        feature_names=spec.features,
        output_semantics=OutputSemantics.EMBEDDING if embedding else OutputSemantics.PROBABILITY,
        label=spec.label,
        segment=spec.segment_dict,
        owner=OWNER,
        training_window=TrainingWindow(_utc(data.impressions.window_ms[0]), _utc(data.impressions.holdout_start_ms)),
        holdout=holdout,
        latency_budget=LatencyBudget(*LATENCY_BUDGET[spec.algo]),
        fallback=Fallback("static_prior", prior),
        seed=data.seed,
        onnx_file=onnx_path.name,
        onnx_sha256=sha256_file(onnx_path),
    )
    manifest.validate_serving()
    manifest.save(directory)
    return manifest


def build_ranking_model(spec: ModelSpec, data: DemoData, out_dir: Path) -> Manifest:
    """Train, export, evaluate (with onnxruntime) and publish one ranking or scoring model."""
    x, y = data.xy(spec.features, spec.label, spec.segment_dict, holdout=False)
    payload = trainers.train(spec.algo, x, y, data.seed, spec.name).SerializeToString()
    xh, yh = data.xy(spec.features, spec.label, spec.segment_dict, holdout=True)
    (score,) = _session(payload).run(["score"], {"features": xh})  # the very bytes that are published
    truth = data.impressions.p_true(spec.label)[data.rows(spec.segment_dict, holdout=True)]
    holdout = metrics.holdout_metrics(
        yh,
        score,
        oracle_auc=metrics.auc(yh, truth),  # the ceiling: AUC of the ground-truth probability
        calibration_vs_truth=float(np.mean(score, dtype=np.float64) / truth.mean()),
    )
    return _publish(spec, payload, out_dir=out_dir, data=data, holdout=holdout, prior=float(y.mean()))


def build_towers(user: ModelSpec, ad: ModelSpec, data: DemoData, out_dir: Path) -> tuple[Manifest, Manifest]:
    """Train the two-tower model, publish both towers and write the embeddings of all ads."""
    xu, y = data.xy(user.features, user.label, {}, holdout=False)
    xa, _ = data.xy(ad.features, ad.label, {}, holdout=False)
    model = towers.train_two_tower(xu, xa, y, seed=data.seed, dim=EMBEDDING_DIM)
    user_onnx = tower_model(model.user_weights, model.user_bias, user.name).SerializeToString()
    ad_onnx = tower_model(model.ad_weights, model.ad_bias, ad.name).SerializeToString()
    user_session, ad_session = _session(user_onnx), _session(ad_onnx)

    xuh, yh = data.xy(user.features, user.label, {}, holdout=True)
    xah, _ = data.xy(ad.features, ad.label, {}, holdout=True)
    (eu,) = user_session.run(["embedding"], {"features": xuh})
    (ea,) = ad_session.run(["embedding"], {"features": xah})
    (all_ads,) = ad_session.run(["embedding"], {"features": np.ascontiguousarray(data.world.ad_features)})
    logit = np.einsum("ij,ij->i", eu.astype(np.float64), ea.astype(np.float64))
    p = 0.5 * (1.0 + np.tanh(0.5 * logit))
    # recall@k over the whole corpus for (up to) RECALL_QUERIES clicked holdout impressions
    queries = eu[yh == 1][:RECALL_QUERIES]
    targets = data.impressions.ad_id[np.flatnonzero(data.holdout)[yh == 1][:RECALL_QUERIES]]
    extra = {f"recall_at_{k}": metrics.corpus_recall_at_k(queries, all_ads, targets, k) for k in (100, 1000)}
    # AUC of the dot product itself (sigmoid is monotone, but saturates to ties in float64)
    holdout = replace(metrics.holdout_metrics(yh, p, **extra), auc=metrics.auc(yh, logit))
    _write_npy(data_dir(out_dir) / EMBEDDINGS_FILE, all_ads)
    prior = float(y.mean())
    return (
        _publish(user, user_onnx, out_dir=out_dir, data=data, holdout=holdout, prior=prior),
        _publish(ad, ad_onnx, out_dir=out_dir, data=data, holdout=holdout, prior=prior),
    )


def _write_npy(path: Path, array: F32) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    os.replace(tmp, path)


def build_demo(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
    on_built: Callable[[Built], None] | None = None,
) -> list[Manifest]:
    """Build (or find) the whole demo in ``out_dir``; returns the 24 manifests sorted by name.

    Args:
        out_dir: the output root (layout in :mod:`models.demo.layout`).
        seed: data and training seed.
        force: rebuild even if ``out_dir`` is complete.
        progress: show tqdm progress bars on stderr.
        on_built: called once per model, in catalog order, as it is built (or found).
    """
    out = Path(out_dir)
    if not force and models_complete(out, seed):
        found = {m.name: m for m in load_demo_manifests(out) if m.version == VERSION}
        for spec in CATALOG:
            if on_built:
                on_built(Built(found[spec.name], None))
        manifests = sorted((found[s.name] for s in CATALOG), key=lambda m: m.name)
        ensure_export(out, seed, manifests)
        return manifests
    data = DemoData.generate(seed)
    write_tables(data.world, data.impressions, data_dir(out))
    by_algo = {s.algo: s for s in CATALOG if s.algo in (Algo.USER_TOWER, Algo.AD_TOWER)}
    results: list[Manifest] = []
    bar = tqdm(CATALOG, desc="demo models", unit="model", disable=not progress, leave=False)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        start = time.perf_counter()
        if spec.algo is Algo.AD_TOWER:
            continue  # built together with the user tower
        if spec.algo is Algo.USER_TOWER:
            pair = build_towers(spec, by_algo[Algo.AD_TOWER], data, out)
            seconds = (time.perf_counter() - start) / 2
            results.extend(pair)
            if on_built:
                for m in pair:
                    on_built(Built(m, seconds))
            continue
        manifest = build_ranking_model(spec, data, out)
        results.append(manifest)
        if on_built:
            on_built(Built(manifest, time.perf_counter() - start))
    bar.close()
    manifests = sorted(results, key=lambda m: m.name)
    write_export(out, data.world, manifests)
    return manifests


def summary_table(rows: Sequence[Built]) -> str:
    """A plain-text table: name, stage, task, input width, AUC, log loss, calibration ratio, build seconds."""
    header = f"{'name':<28} {'stage':<14} {'task':<15} {'in':>3} {'auc':>6} {'logloss':>8} {'calib':>6} {'secs':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        m = r.manifest
        secs = "cached" if r.seconds is None else f"{r.seconds:6.2f}"
        lines.append(
            f"{m.name:<28} {m.stage.value:<14} {m.task.value:<15} {len(m.feature_names):>3} "
            f"{m.holdout.auc:6.3f} {m.holdout.log_loss:8.4f} {m.holdout.calibration_ratio:6.3f} {secs:>6}"
        )
    return "\n".join(lines)
