"""Where the demo lives on disk, and how to tell whether a build is complete. No trainer imports.

Layout under ``out``::

    data/{users,campaigns,ads,contexts,impressions}.parquet
    data/ad_embeddings.npy                 float32 [n_ads, 16], row i = ad tower embedding of ad i
    models/<name>/1/model.onnx
    models/<name>/1/manifest.json
    export/index.json                      the marketplace as raw arrays for the Java ad server
    export/<array>.{f32,i32}               (see models.demo.export)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Final

from models.demo.catalog import CATALOG
from models.manifest import Manifest, ManifestError
from models.synth.tables import TABLES

VERSION: Final = "1"
EMBEDDINGS_FILE: Final = "ad_embeddings.npy"
EXPORT_FORMAT: Final = "scoregate.export/1"
"""The format tag of ``export/index.json``; a reader refuses any other."""
EXPORT_INDEX: Final = "index.json"


def model_dir(out_dir: str | os.PathLike[str], name: str, version: str = VERSION) -> Path:
    """``<out>/models/<name>/<version>``."""
    return Path(out_dir) / "models" / name / version


def data_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``<out>/data``."""
    return Path(out_dir) / "data"


def export_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``<out>/export``: the feature export for the Java ad server (:mod:`models.demo.export`)."""
    return Path(out_dir) / "export"


def load_demo_manifests(out_dir: str | os.PathLike[str]) -> list[Manifest]:
    """All manifests under ``<out>/models/*/*/``, sorted by (name, version) (``ManifestError`` if one is bad)."""
    paths = sorted((Path(out_dir) / "models").glob("*/*/manifest.json"))
    return sorted((Manifest.load(p.parent) for p in paths), key=lambda m: (m.name, int(m.version)))


def is_complete(out_dir: str | os.PathLike[str], seed: int) -> bool:
    """Whether ``out_dir`` holds the whole demo for ``seed``: the models and data (:func:`models_complete`) and the
    feature export (:func:`export_is_complete`)."""
    return models_complete(out_dir, seed) and export_is_complete(out_dir, seed)


def models_complete(out_dir: str | os.PathLike[str], seed: int) -> bool:
    """Whether ``out_dir`` holds every data file, and for every catalog model a manifest of ``seed`` whose ONNX file
    exists with the recorded SHA-256."""
    data = data_dir(out_dir)
    if not all((data / f"{t}.parquet").is_file() for t in TABLES) or not (data / EMBEDDINGS_FILE).is_file():
        return False
    for spec in CATALOG:
        directory = model_dir(out_dir, spec.name)
        try:
            m = Manifest.load(directory)
            m.check_artifact(directory)
        except (FileNotFoundError, ManifestError):
            return False
        if m.seed != seed or m.name != spec.name:
            return False
    return True


def export_is_complete(out_dir: str | os.PathLike[str], seed: int, contexts: int | None = None) -> bool:
    """Whether ``<out>/export`` holds an export of this format for ``seed`` (with ``contexts`` pooled contexts, when
    given) whose files all exist with the sizes its index records, and which lists every catalog model."""
    directory = export_dir(out_dir)
    try:
        index = json.loads((directory / EXPORT_INDEX).read_text(encoding="utf-8"))
        if index["format"] != EXPORT_FORMAT or index["seed"] != seed:
            return False
        if contexts is not None and index["sizes"]["contexts"] != contexts:
            return False
        if not {s.name for s in CATALOG} <= set(index["models"]):
            return False
        for spec in index["arrays"].values():
            size = 4
            for d in spec["shape"]:
                size *= int(d)
            if (directory / spec["file"]).stat().st_size != size:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True
