"""Where the demo lives on disk, and how to tell whether a build is complete. No trainer imports.

Layout under ``out``::

    data/{users,campaigns,ads,contexts,impressions}.parquet
    data/ad_embeddings.npy                 float32 [n_ads, 16], row i = ad tower embedding of ad i
    models/<name>/1/model.onnx
    models/<name>/1/manifest.json
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from models.demo.catalog import CATALOG
from models.manifest import Manifest, ManifestError
from models.synth.tables import TABLES

VERSION: Final = "1"
EMBEDDINGS_FILE: Final = "ad_embeddings.npy"


def model_dir(out_dir: str | os.PathLike[str], name: str, version: str = VERSION) -> Path:
    """``<out>/models/<name>/<version>``."""
    return Path(out_dir) / "models" / name / version


def data_dir(out_dir: str | os.PathLike[str]) -> Path:
    """``<out>/data``."""
    return Path(out_dir) / "data"


def load_demo_manifests(out_dir: str | os.PathLike[str]) -> list[Manifest]:
    """All manifests under ``<out>/models/*/*/``, sorted by (name, version) (``ManifestError`` if one is bad)."""
    paths = sorted((Path(out_dir) / "models").glob("*/*/manifest.json"))
    return sorted((Manifest.load(p.parent) for p in paths), key=lambda m: (m.name, int(m.version)))


def is_complete(out_dir: str | os.PathLike[str], seed: int) -> bool:
    """Whether ``out_dir`` holds the whole demo for ``seed``: every data file, and for every catalog model a
    manifest of that seed whose ONNX file exists with the recorded SHA-256."""
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
