"""The benchmark suites run in --quick mode in CI, so they cannot rot."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_scoring_suite_quick(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "scoring.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "scoring", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "scoring" and doc["quick"] is True
    keys = {"name", "params", "n", "p50_us", "p99_us", "p999_us", "throughput_per_s"}
    assert doc["results"] and all(keys <= set(r) for r in doc["results"])
    by = {(r["name"], r["params"]["model"], r["params"]["batch"]): r for r in doc["results"]}
    for batch in (1, 64, 256):
        for name in ("floor", "runtime"):
            r = by[(name, "pctr_gbdt", batch)]
            assert r["n"] > 100 and 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"]
    figures = doc["figures"]
    for name in ("runtime_over_floor_p50_b1", "runtime_over_floor_p50_b256"):
        assert name in figures
    # Loose regression guards for a noisy shared CI machine; the acceptance figures (<= 1.5 and
    # <= 1.05) are measured by the full run and recorded in perf/RESULTS.md. A quick run's 1.5 s
    # per case is at the machine's mercy: CI once printed 1.257 at batch 256 where full runs give
    # 1.02-1.03, so the guard catches gross regressions only (the runtime doing half again the
    # floor's work).
    assert figures["runtime_over_floor_p50_b1"] < 2.0
    assert figures["runtime_over_floor_p50_b256"] < 1.5
    assert out.with_suffix(".md").read_text().startswith("### Suite `scoring` (quick)")
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    open_loop = next(r for r in doc["results"] if r["name"] == "runtime_open_loop")
    # The driver kept (roughly) its rate: a 0.25 s iteration ends when its last request does, so a stall near the
    # end on a busy CI machine stretches it (seen: 1,557/s with other jobs on the 2 cores).
    assert open_loop["throughput_per_s"] == pytest.approx(2000, rel=0.35)


@pytest.mark.slow
def test_bridge_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "bridge.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "bridge", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    figures = doc["figures"]
    for name in ("bridge_over_floor_p50_b256", "bridge_tput_t32_over_t1", "bridge_p99_over_p50_t32"):
        assert figures[name] > 0, name
    # No collapse as Java threads are added (the naive per-call design loses a third at 8 threads).
    assert figures["bridge_tput_t32_over_t1"] >= 1.0
    threads = {r["params"]["threads"]: r for r in doc["results"] if r["name"] == "bridge" and r["params"]["batch"] == 1}
    assert set(threads) == {1, 8, 32} and all(r["n"] > 100 for r in threads.values())


@pytest.mark.slow
def test_bridge_stress_short(demo_dir: Path, tmp_path: Path) -> None:
    """The CI variant of the 1M-call stress: 64 Java threads, 3 models, every output checked."""
    doc = _stress(demo_dir, tmp_path, "--calls", "30000", "--threads", "64")
    assert doc["calls"] == 30000 and doc["errors"] == 0 and doc["mismatches"] == 0
    assert doc["requests_per_onnx_run"] > 1.0  # concurrent calls were micro-batched
    assert doc["rss_after_mb"] < doc["rss_before_mb"] + 200


@pytest.mark.slow
def test_bridge_stress_long_in_place_batches(demo_dir: Path, tmp_path: Path) -> None:
    """One Java thread, 256 rows a call: each call is a batch scored in place, long enough that its spinning caller
    takes the scores on the lane's mark (x86-64), before complete(); every output still checked."""
    doc = _stress(demo_dir, tmp_path, "--calls", "3000", "--threads", "1", "--rows", "256")
    assert doc["calls"] == 3000 and doc["errors"] == 0 and doc["mismatches"] == 0
    assert doc["requests_per_onnx_run"] == 1.0  # one caller: every batch is its request, in place
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert doc["early_answers"] > 500, doc  # the first calls teach the queue each model's cost


@pytest.mark.slow
def test_bridge_stress_with_a_canary(demo_dir: Path, tmp_path: Path) -> None:
    """Java callers with routing keys while a 10 % canary of each model runs: every output checked, each model's
    share of calls on the candidate within a point of 10 %, and no (model, key) ever reaches the other version."""
    doc = _stress(demo_dir, tmp_path, "--calls", "60000", "--threads", "16", "--canary", "10")
    assert doc["calls"] == 60000 and doc["errors"] == 0 and doc["mismatches"] == 0
    assert doc["unsticky"] == 0
    assert all(abs(share - 0.10) <= 0.01 for share in doc["canary_share"].values()), doc["canary_share"]


def _stress(demo_dir: Path, tmp_path: Path, *args: str) -> dict[str, Any]:
    """Runs ``python -m perf.stress ARGS`` on the demo models and returns its JSON report."""
    out = tmp_path / "stress.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf.stress", *args, "--demo-dir", str(demo_dir), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc
