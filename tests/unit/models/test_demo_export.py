"""The feature export for the Java ad server: rows assembled from its files equal ``candidate_matrix`` bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.demo import CATALOG, feature_columns
from models.demo.__main__ import main
from models.demo.catalog import EARLY_RANK_FEATURES
from models.demo.export import PRICING, assemble, load_export, sample_request_pool, write_export
from models.demo.layout import export_dir, export_is_complete
from models.manifest import Manifest
from models.synth import (
    AD_FEATURES,
    CONTEXT_FEATURES,
    FEATURE_NAMES,
    WorldConfig,
    candidate_matrix,
    feature_indices,
    make_world,
)
from models.synth.schema import DEVICES, code_of
from models.synth.world import World

SMALL = WorldConfig(seed=3, n_users=600, n_advertisers=50, n_campaigns=200, n_ads=3_000, n_placements=60)


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(SMALL)


@pytest.fixture(scope="module")
def exported(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("export")
    write_export(root, world, contexts=256)
    return root


def _bits(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)


def test_assembled_rows_equal_candidate_matrix_bit_for_bit(world: World, exported: Path) -> None:
    export = load_export(exported)
    rng = np.random.default_rng(11)
    ctv = code_of(DEVICES, "ctv")
    devices_seen = set()
    for context in rng.choice(256, size=40, replace=False):
        device = int(export["context_device"][context])
        devices_seen.add(device)
        pool = world.video_ad_ids if device == ctv else np.arange(world.n_ads)
        ads = rng.choice(pool, size=50, replace=False).astype(np.int32)
        user = int(export["request_user"][context])
        _, contexts = sample_request_pool(world, 256, world.config.seed)
        want = candidate_matrix(world, user, contexts.row(int(context)), ads)  # from the Context object
        assert np.array_equal(_bits(assemble(export, int(context), ads)), _bits(want))
        ctx_features = np.asarray(export["context_features"][context])  # from the exported context block
        assert np.array_equal(_bits(candidate_matrix(world, user, ctx_features, ads)), _bits(want))
        for names in (EARLY_RANK_FEATURES, AD_FEATURES + CONTEXT_FEATURES):
            columns = feature_indices(names)
            got = assemble(export, int(context), ads, columns)
            assert got.shape == (50, len(names)) and got.flags.c_contiguous
            assert np.array_equal(_bits(got), _bits(want[:, columns]))
    assert devices_seen == {0, 1, 2}


def test_files_are_raw_little_endian_arrays_the_index_describes(world: World, exported: Path) -> None:
    directory = export_dir(exported)
    index = json.loads((directory / "index.json").read_text())
    assert index["format"] == "scoregate.export/1" and index["byte_order"] == "little"
    assert index["sizes"] == {"users": 600, "ads": 3_000, "contexts": 256}
    assert index["feature_names"] == list(FEATURE_NAMES)
    assert [(b["first_column"], b["width"]) for b in index["blocks"].values()] == [(24, 24), (48, 16), (0, 24)]
    raw = np.fromfile(directory / "ad_features.f32", dtype="<f4").reshape(3_000, 24)
    assert np.array_equal(raw, world.ad_features)
    bids = np.fromfile(directory / index["arrays"]["ad_bid"]["file"], dtype="<f4")
    assert np.array_equal(bids, world.ad_bid)
    objective = np.fromfile(directory / "ad_objective.i32", dtype="<i4")
    assert np.array_equal(objective, world.ad_objective)
    assert np.array_equal(np.fromfile(directory / "video_ad_ids.i32", dtype="<i4"), world.video_ad_ids)
    for name, spec in index["arrays"].items():
        assert (directory / spec["file"]).stat().st_size == 4 * int(np.prod(spec["shape"])), name
    assert {k: v["unit"] for k, v in index["pricing"].items()} == {
        "cpc": "CPC",
        "cpa": "CPA",
        "awareness": "CPM",
        "ctv_completion": "CPCM",
    }
    assert index["pricing"] == {k: dict(v) for k, v in PRICING.items()}
    assert index["eligible_ads"] == {"mobile": None, "desktop": None, "ctv": "video_ad_ids"}
    pods = np.fromfile(directory / "context_n_slots.i32", dtype="<i4") > 0
    devices = np.fromfile(directory / "context_device.i32", dtype="<i4")
    assert np.array_equal(pods, devices == code_of(DEVICES, "ctv"))  # every CTV placement is an ad break


def test_export_is_deterministic_and_complete_only_when_whole(world: World, exported: Path, tmp_path: Path) -> None:
    again = write_export(tmp_path, world, contexts=256)
    for f in sorted(export_dir(exported).iterdir()):
        assert (again / f.name).read_bytes() == f.read_bytes(), f.name
    # without the catalog's models listed, the demo does not count it as complete
    assert not export_is_complete(tmp_path, seed=3)
    index = json.loads((again / "index.json").read_text())
    index["models"] = {s.name: {} for s in CATALOG}
    (again / "index.json").write_text(json.dumps(index))
    assert export_is_complete(tmp_path, seed=3) and export_is_complete(tmp_path, seed=3, contexts=256)
    assert not export_is_complete(tmp_path, seed=4) and not export_is_complete(tmp_path, seed=3, contexts=10)
    (again / "ad_bid.f32").write_bytes(b"\0" * 8)
    assert not export_is_complete(tmp_path, seed=3)


def test_the_export_command_needs_a_built_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--out", str(tmp_path)]) == 1
    assert "python -m models.demo build" in capsys.readouterr().err


def test_the_built_demo_exports_every_models_columns(built_demo: tuple[Path, list[Manifest]]) -> None:
    root, manifests = built_demo
    export = load_export(root)
    assert export.index["seed"] == 0 and export.index["sizes"]["contexts"] == 4096
    for m in manifests:
        entry = export.index["models"][m.name]
        assert entry["columns"] == feature_columns(m).tolist()
        assert (entry["task"], entry["stage"], entry["version"]) == (m.task.value, m.stage.value, m.version)
