"""Suite ``pipeline`` runs in --quick mode, so it cannot rot: every load level measured, every figure present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_pipeline_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "pipeline.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "pipeline", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "pipeline" and doc["quick"] is True
    levels = {r["params"]["load_pct"] for r in doc["results"] if r["name"] == "open_loop"}
    assert levels == {50, 80, 100, 200}
    for r in doc["results"]:
        assert r["n"] > 0 and 0 < r["p50_us"] <= r["p99_us"], r
        assert r["served"] + r["failed"] == r["n"], "every admitted request is answered or counted as failed"
    figures = doc["figures"]
    assert figures["pipeline_saturation_rps"] > 0
    cores = doc["meta"]["cores_used"]
    # (figures are rounded to 4 decimals in the JSON)
    assert figures["cores_per_million_rps"] == pytest.approx(1e6 * cores / figures["pipeline_saturation_rps"], rel=1e-3)
    assert figures["pipeline_p99_at_200pct_over_80pct"] > 0
    for pct in (50, 80, 100, 200):
        assert figures[f"pipeline_p99_ms_at_{pct}pct"] >= figures[f"pipeline_p50_ms_at_{pct}pct"] > 0
        assert 0 <= figures[f"pipeline_failed_share_at_{pct}pct"] <= 1
    assert out.with_suffix(".md").read_text().startswith("### Suite `pipeline` (quick)")


@pytest.mark.slow
def test_batching_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "batching.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "batching", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(out.read_text())
    assert {r["name"] for r in doc["results"]} == {"per_model", "fused", "per_request", "cross_request"}
    figures = doc["figures"]
    for name in (
        "fused_over_per_model_p50",
        "cross_request_over_per_request_p50",
        "cross_request_over_per_request_p50_gbdt",
    ):
        assert 0 < figures[name] < 10, name
    # Batching 8 small requests to a cheap model into one run wins by a wide margin, even on a shared machine.
    assert figures["cross_request_over_per_request_p50"] < 0.9
