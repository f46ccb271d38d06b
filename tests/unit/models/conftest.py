"""Shared fixtures for the model side: the demo, built once per test session into a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.manifest import Manifest

DEMO_SEED = 0


@pytest.fixture(scope="session")
def built_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Manifest]]:
    """``(root, manifests)`` of the demo built with seed 0 (about 20 s on 2 cores, once per session)."""
    from models.demo import build_demo

    root = tmp_path_factory.mktemp("demo")
    return root, build_demo(root, seed=DEMO_SEED, progress=False)
