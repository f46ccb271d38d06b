"""Publish the built demo models as packages: reference predictions added, any version number.

The demo build (:mod:`models.demo.build`) writes ``<out>/models/<name>/1/{model.onnx,manifest.json}``. A package
also ships reference predictions (:mod:`models.package`): here, ``rows`` realistic marketplace rows
(:func:`models.demo.inputs.demo_features`) and what ONNX Runtime computes on them with the trainer's own session
settings, as the build measures holdout metrics. :func:`publish_demo` publishes them under any version, so the
lifecycle (tests, the hot-swap benchmark) has several versions to move between.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.demo.inputs import demo_features
from models.demo.layout import load_demo_manifests
from models.manifest import Manifest
from models.package import write_reference
from models.store import ArtifactStore, Published

__all__ = ["package_dir", "publish_demo"]


def package_dir(demo_dir: str | os.PathLike[str], manifest: Manifest, out: Path, version: str, rows: int = 64) -> Path:
    """Write a package directory for demo model ``manifest`` as ``version`` under ``out``; returns it."""
    source = Path(demo_dir) / "models" / manifest.name / manifest.version
    onnx_bytes = manifest.check_artifact(source).read_bytes()
    target = out / manifest.name / version
    target.mkdir(parents=True, exist_ok=True)
    (target / manifest.onnx_file).write_bytes(onnx_bytes)
    replace(manifest, version=version).save(target)
    x = demo_features(demo_dir, manifest, rows=rows, seed=int(version))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(onnx_bytes, so, providers=["CPUExecutionProvider"])
    (expected,) = session.run([manifest.outputs[0].name], {manifest.inputs[0].name: x})
    write_reference(target, x, np.asarray(expected))
    return target


def publish_demo(
    demo_dir: str | os.PathLike[str],
    store: ArtifactStore,
    version: str = "1",
    names: Iterable[str] | None = None,
    rows: int = 64,
) -> list[Published]:
    """Publish the built demo's models (all, or ``names``) into ``store`` as ``version``."""
    wanted = None if names is None else set(names)
    manifests = [m for m in load_demo_manifests(demo_dir) if wanted is None or m.name in wanted]
    published = []
    with tempfile.TemporaryDirectory(prefix="scoregate-publish-") as tmp:
        for manifest in manifests:
            published.append(store.publish(package_dir(demo_dir, manifest, Path(tmp), version, rows)))
    return published
