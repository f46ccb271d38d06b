"""The demo: 24 small models trained at build time on the synthetic marketplace, packaged for serving.

``python -m models.demo build --out build/demo [--seed N] [--force]`` builds it; from Python::

    from models.demo import build_demo, load_demo_manifests
    manifests = build_demo("build/demo", seed=0)

Modules: :mod:`~models.demo.catalog` (the 24 specs), :mod:`~models.demo.data` (training data from a seed),
:mod:`~models.demo.trainers` and :mod:`~models.demo.towers` (training), :mod:`~models.demo.onnx_graph` (graph
surgery to the serving conventions), :mod:`~models.demo.metrics`, :mod:`~models.demo.build` (the build),
:mod:`~models.demo.layout` (paths, completeness), :mod:`~models.demo.inputs` (model inputs for traffic
and benchmarks) and :mod:`~models.demo.export` (the marketplace as raw arrays for the reference Java ad server).

Importing this package is cheap: the trainers (LightGBM, scikit-learn, converters) load only when a build runs.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from models.demo.catalog import CATALOG, CATALOG_NAMES, Algo, ModelSpec, spec
from models.demo.data import DemoData, holdout_for, segment_mask
from models.demo.inputs import (
    demo_features,
    demo_request_features,
    demo_seed,
    feature_columns,
    random_inputs,
    random_request,
    request_inputs,
    world_for_seed,
)
from models.demo.layout import data_dir, is_complete, load_demo_manifests, model_dir

if TYPE_CHECKING:
    from models.manifest import Manifest

__all__ = [
    "CATALOG",
    "CATALOG_NAMES",
    "Algo",
    "DemoData",
    "ModelSpec",
    "build_demo",
    "data_dir",
    "demo_features",
    "demo_request_features",
    "demo_seed",
    "feature_columns",
    "holdout_for",
    "is_complete",
    "load_demo_manifests",
    "model_dir",
    "random_inputs",
    "random_request",
    "request_inputs",
    "segment_mask",
    "spec",
    "world_for_seed",
]


def build_demo(
    out_dir: str | os.PathLike[str], seed: int = 0, force: bool = False, progress: bool = True
) -> list[Manifest]:
    """Build the demo into ``out_dir`` (idempotent); returns the 24 manifests sorted by name.

    See :func:`models.demo.build.build_demo` for the details.
    """
    from models.demo.build import build_demo as _build

    return _build(out_dir, seed=seed, force=force, progress=progress)
