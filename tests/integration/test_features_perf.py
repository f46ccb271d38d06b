"""The ``features`` benchmark suite runs in --quick mode in CI, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_features_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "features.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "features", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "features" and doc["quick"] is True
    by = {(r["name"], r["params"]["rows"]): r for r in doc["results"]}
    for path in ("python_cold", "java_cold", "java_warm"):
        for rows in (100, 500):
            r = by[(path, rows)]
            assert r["n"] > 10 and 0 < r["p50_us"] <= r["p99_us"], (path, rows)
    figures = doc["figures"]
    for name in ("hydrate_p99_ms_cold_n500_f64", "hydrate_p99_ms_warm_n500_f64", "python_over_java_p50_n500_f64"):
        assert figures[name] > 0, name
    # Loose guards for a noisy shared machine; the acceptance figures come from the full run (perf/RESULTS.md).
    assert by[("java_warm", 500)]["p50_us"] < by[("java_cold", 500)]["p50_us"]
    assert out.with_suffix(".md").read_text().startswith("### Suite `features` (quick)")
