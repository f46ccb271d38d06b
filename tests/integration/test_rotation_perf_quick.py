"""The rotation benchmark runs in --quick mode in CI: two gRPC replicas leave the rotation to load, both clients
are measured through the same deploys, and no call fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("hazelcast")


@pytest.mark.slow
def test_rotation_suite_quick(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "rotation.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "rotation", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "rotation" and doc["quick"] is True
    f = doc["figures"]
    assert f["rotation_deploys"] == doc["meta"]["plan"]["rounds"] > 0
    assert f["rotation_failed_calls"] == 0 and f["inplace_failed_calls"] == 0, doc["meta"]["errors"]
    assert f["rotation_swap_p99_over_steady_p99"] > 0 and f["inplace_swap_p99_over_steady_p99"] > 0
    assert {r["name"] for r in doc["results"]} == {"rotation_steady", "rotation_swap", "inplace_steady", "inplace_swap"}
    assert "leave the rotation to load" in out.with_suffix(".md").read_text()
