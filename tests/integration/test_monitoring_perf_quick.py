"""Suite ``monitoring`` runs in --quick mode, so it cannot rot: the pipeline's overhead with the monitor on and off,
and the detection figures the acceptance names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_monitoring_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "monitoring.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "monitoring", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "monitoring" and doc["quick"] is True
    names = {r["name"] for r in doc["results"]}
    assert {"pipeline_monitor_on", "pipeline_monitor_off", "monitor_on", "monitor_off", "observe_only"} <= names
    f = doc["figures"]
    # Quick iterations are short and CI machines are shared: the overhead ratio is only checked for sanity here;
    # the acceptance figure comes from the full run (perf/RESULTS.md).
    assert 0.5 < f["monitoring_on_over_off_tput"] < 1.5
    assert f["pipeline_rps_monitor_off"] > 0
    assert f["drift_missed_large"] == 0
    assert f["drift_false_alarms_per_million"] == 0
    assert f["calibration_ratio_rel_err"] < 0.01 and f["calibration_ece_rel_err"] < 0.01
    assert f["miscalibrated_flagged"] == 1 and f["bad_input_counted"] == 1
    assert 0 < f["bad_canary_rollback_requests"] < 20_000 and f["good_canary_false_rollbacks"] == 0
