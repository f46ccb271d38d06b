"""Demo models published as versioned packages pass every validation gate."""

from __future__ import annotations

from pathlib import Path

from models.demo.publish import publish_demo
from models.store import ArtifactStore
from models.validate import ValidationOptions, validate_package


def test_demo_models_publish_under_any_version_and_validate(demo_dir: Path, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    names = ["pctr_gbdt", "retrieval_user_tower"]
    for version in ("1", "7"):
        published = publish_demo(demo_dir, store, version, names=names, rows=32)
        assert sorted(str(p.id) for p in published) == [f"{n}@{version}" for n in names]
    assert store.versions("pctr_gbdt") == ("1", "7")
    # The same ONNX bytes under two versions: different packages (manifest and reference rows differ).
    assert store.digest("pctr_gbdt", "1") != store.digest("pctr_gbdt", "7")
    for name in names:
        package = store.get(name, "7")
        assert package.reference().inputs.shape == (32, len(package.manifest.feature_names))
        report = validate_package(package, ValidationOptions(fuzz_rows=64, latency_calls=50))
        assert report.passed, report.render()
