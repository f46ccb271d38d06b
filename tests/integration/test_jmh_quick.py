"""Suite ``jmh`` (ONNX Runtime's Java API vs the bridge, Py4J + shared memory and gRPC, in JMH) runs in --quick mode.

Needs ``perf/target/benchmarks.jar`` (``make setup`` builds it) and a ``java`` on the PATH.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perf.suites.jmh import BENCHMARKS, HEADLINE, sweep

ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / "perf" / "target" / "benchmarks.jar"


@pytest.mark.slow
def test_jmh_suite_quick(tmp_path: Path) -> None:
    if not JAR.is_file():
        pytest.fail(f"{JAR} is missing: run 'make setup' (mvn install builds it)")
    out = tmp_path / "jmh.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "jmh", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "jmh" and doc["quick"] is True
    keys = {"name", "params", "n", "p50_us", "p99_us", "p999_us", "throughput_per_s"}
    assert all(keys <= set(r) for r in doc["results"])

    # Every implementation measured every swept case, with throughput and sampled latencies.
    by = {(r["name"], r["params"]["batch"], r["params"]["threads"]): r for r in doc["results"]}
    wanted = {(name, b, t) for name in BENCHMARKS for t, batches in sweep(quick=True).items() for b in batches}
    assert set(by) == wanted
    for key, r in by.items():
        assert r["throughput_per_s"] > 0, key
        assert r["n"] > 0 and 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"], key

    figures = doc["figures"]
    for batch, threads in HEADLINE:
        for name in (
            f"bridge_over_ortjava_tput_b{batch}_t{threads}",
            f"bridge_over_ortjava_pinned_tput_b{batch}_t{threads}",
            f"py4j_over_ortjava_tput_b{batch}_t{threads}",
            f"grpc_over_ortjava_tput_b{batch}_t{threads}",
        ):
            assert figures[name] > 0, name

    # Diagnostics of every bridge case: where its CPU went and how requests were batched.
    diag = {(d["batch"], d["threads"]): d for d in doc["diagnostics"]["bridge"]}
    assert set(diag) == {(b, t) for _, b, t in wanted}
    assert all(d["requests"] > 0 and d["requests_per_onnx_run"] >= 1.0 for d in diag.values())
    assert {d["batch"] for d in doc["diagnostics"]["ort_python"]} == {b for _, b, _ in wanted}
    assert out.with_suffix(".md").read_text().startswith("### Suite `jmh` (quick)")
