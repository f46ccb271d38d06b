"""The rollout benchmark runs in --quick mode in CI: replicas converge, the canary share holds, shadow is measured."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("hazelcast")


@pytest.mark.slow
def test_rollout_suite_quick(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "rollout.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "rollout", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "rollout" and doc["quick"] is True
    f = doc["figures"]
    assert f["rollouts"] == doc["meta"]["plan"]["rollouts"] > 0
    assert 0 < f["rollout_converge_p50_ms"] <= f["rollout_converge_p99_ms"] < 120_000
    assert 0.09 <= f["canary_share"] <= 0.11 and f["canary_sticky"] == 1.0
    assert f["shadow_mirrored"] > 0 and f["shadow_p99_over_off_p99"] > 0  # the <= 1.02 target: full run only
    assert "desired-state changes" in out.with_suffix(".md").read_text()
