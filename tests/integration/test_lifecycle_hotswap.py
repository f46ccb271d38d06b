"""The hot-swap benchmark runs in --quick mode in CI: it must complete, fail no request and leak no memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_hotswap_suite_quick(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "hotswap.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "hotswap", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "hotswap" and doc["quick"] is True
    figures = doc["figures"]
    assert figures["swaps"] == doc["meta"]["plan"]["swaps"] > 0
    assert figures["swap_failed_requests"] == 0, doc["failures"]
    # Loose guards for a noisy shared machine; the acceptance figures (<= 1.1 and <= 1.05) come from the full run.
    assert 0 < figures["swap_rss_after_over_before"] < 1.2
    assert figures["swap_p99_over_steady_p99"] > 0
    # Each swap moves every model to a new version: some calls in the swap windows are a thread's first on one.
    assert 0 < figures["swap_first_call_share"] < 1
    assert figures["steady_service_p50_us"] > 0 and figures["swap_other_service_p99_us"] > 0
    by_name = {r["name"]: r for r in doc["results"]}
    assert by_name["steady"]["n"] > 100 and by_name["swapping"]["n"] > 100
    notes = out.with_suffix(".md").read_text()
    assert "swaps of 24 models" in notes and "a thread's first call on a new version" in notes
