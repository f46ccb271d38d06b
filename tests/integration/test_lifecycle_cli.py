"""The lifecycle commands end to end: publish (gated), validate, list, status, with --json for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from lifecycle_builders import FEATURES, package_dir

from gateway.cli import main
from models.manifest import TensorSpec


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_publish_list_validate_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    good = [package_dir(tmp_path / "src", "pctr", v, seed=int(v)) for v in ("1", "2")]
    code, doc = _run(capsys, "publish", *map(str, good), "--store", store, "--json", "--no-progress")
    assert code == 0
    results = doc["results"]
    assert [r["model"] for r in results] == ["pctr@1", "pctr@2"]
    assert all(r["validation"]["passed"] for r in results)

    code, doc = _run(capsys, "publish", str(good[0]), "--store", store, "--json", "--no-progress")
    assert code == 2 and doc["error"] == "PackageExistsError"

    liar = package_dir(
        tmp_path / "liar",
        "pcvr",
        "1",
        inputs=(TensorSpec("features", "float32", (-1, FEATURES + 2)),),
        feature_names=tuple(f"user.f{i}" for i in range(FEATURES + 2)),
    )
    code, doc = _run(capsys, "publish", str(liar), "--store", store, "--json", "--no-progress")
    assert code == 1
    (result,) = doc["results"]
    assert result["published"] is False
    assert "signature" in [g["gate"] for g in result["validation"]["gates"] if not g["passed"]]

    code, doc = _run(capsys, "list", "--store", store, "--json")
    assert code == 0
    assert [(v["model"], v["version"], v["validation"]) for v in doc["versions"]] == [
        ("pctr", "1", "passed"),
        ("pctr", "2", "passed"),
    ]

    code, doc = _run(capsys, "validate", "pctr@1", "--store", store, "--json", "--no-progress")
    assert code == 0 and doc["passed"] is True and doc["model"] == "pctr@1"
    code, doc = _run(capsys, "validate", str(liar), "--json", "--no-progress")
    assert code == 1 and doc["passed"] is False

    code, doc = _run(capsys, "status", "--store", store, "--json")
    assert code == 0
    assert [(v["model"], v["version"], v["state"], v["live"]) for v in doc["versions"]] == [
        ("pctr", "2", "ready", True)
    ]
    code, doc = _run(capsys, "status", "--store", store, "--json", "--max-model-bytes", "16")
    assert code == 1
    (row,) = doc["versions"]
    assert row["state"] == "error" and "over the configured limit" in row["error"]


def test_human_output_and_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = str(tmp_path / "store")
    src = package_dir(tmp_path / "src", "pctr", "1")
    assert main(["publish", str(src), "--store", store, "--no-progress"]) == 0
    assert "published pctr@1 sha256:" in capsys.readouterr().out
    assert main(["validate", "pctr@1", "--store", store, "--no-progress"]) == 0
    assert "verdict: PASS" in capsys.readouterr().out
    assert main(["validate", "../../etc@1", "--store", store, "--no-progress"]) == 2
    assert "must match" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.tar"
    corrupt.write_bytes(b"\x00" * 10 + b"not a package")
    assert main(["publish", str(corrupt), "--store", store, "--no-progress"]) == 2
    assert "not a readable archive" in capsys.readouterr().err
    assert main(["list", "--store", store]) == 0
    assert "pctr" in capsys.readouterr().out
