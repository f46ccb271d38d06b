"""``python -m perf run grpc --quick`` runs in CI, so the suite cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_grpc_suite_quick(tmp_path: Path, demo_dir: Path) -> None:
    out = tmp_path / "grpc.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "grpc", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "grpc" and doc["quick"] is True
    by = {(r["name"], r["params"]["batch"], r["params"]["threads"]): r for r in doc["results"]}
    for batch in (1, 256):
        for name in ("floor", "scoregate"):
            r = by[(name, batch, 1)]
            assert r["n"] > 50 and 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"]
    assert by[("scoregate", 1, 8)]["throughput_per_s"] > 0
    figures = doc["figures"]
    # The transport costs something, and not absurdly much, on a noisy shared machine.
    assert 0 < figures["grpc_overhead_us_p50_b1"] < 20_000
    assert 0 < figures["grpc_overhead_us_p50_b256"] < 50_000
    peer = ("mlserver_pw1", 1, 8) in by
    assert ("grpc_tput_over_mlserver" in figures) == peer
    if peer:
        assert figures["grpc_tput_over_mlserver"] > 0 and figures["grpc_p99_over_mlserver"] > 0
    else:  # the quick run may go without the peer only when its venv could not be built, and says so
        assert "without the peer" in proc.stderr
    assert out.with_suffix(".md").read_text().startswith("### Suite `grpc` (quick)")
    assert out.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
