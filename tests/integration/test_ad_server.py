"""The reference Java ad server (``jvm_bridge/ad-server``) on the demo: its rows, and a run through the real bridge.

The jar is built by ``mvn install`` (``make setup``); the demo export by ``python -m models.demo build``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.demo import demo_seed, world_for_seed
from models.demo.export import load_export, sample_request_pool
from models.synth import candidate_matrix
from models.synth.schema import DEVICES, code_of

ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / "jvm_bridge" / "ad-server" / "target" / "scoregate-ad-server.jar"
MAIN = "dev.scoregate.adserver.AdServerMain"
LIVE = re.compile(
    r"^t=\s*[\d.]+s\s+requests/s\s+([\d,]+)\s+model calls/s\s+([\d,]+)\s+p50\s+([\d.]+) ms\s+p99\s+([\d.]+) ms\s+"
    r"fill\s+([\d.]+)%\s+avg clearing \$\s*([\d.]+) CPM\s+errors (\d+)$"
)


@pytest.fixture(scope="module")
def jar() -> Path:
    assert JAR.is_file(), f"{JAR} is missing: build it with 'mvn -q -B install -DskipTests' (make setup does)"
    return JAR


def _serve(demo_dir: Path, jar: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--models", str(demo_dir / "models"), "--classpath", str(jar),
         "--jvm-main", MAIN, "--", "--export", str(demo_dir / "export"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on the PATH")
def test_java_assembles_the_rows_candidate_matrix_builds(demo_dir: Path, jar: Path, tmp_path: Path) -> None:
    """FeatureLayout (Java) from the exported files == models.synth.candidate_matrix (Python), bit for bit."""
    export = load_export(demo_dir)
    world = world_for_seed(demo_seed(demo_dir))
    _, contexts = sample_request_pool(world, export.index["sizes"]["contexts"], export.index["seed"])
    rng = np.random.default_rng(5)
    ctv_contexts = np.flatnonzero(np.asarray(export["context_device"]) == code_of(DEVICES, "ctv"))
    for context in (int(rng.integers(4096)), int(ctv_contexts[0])):
        pool = world.video_ad_ids if context in ctv_contexts else np.arange(world.n_ads)
        ads = rng.choice(pool, size=30, replace=False)
        user = int(export["request_user"][context])
        want = candidate_matrix(world, user, contexts.row(context), ads)
        for model in ("all", "early_rank_pctr_lr", "brand_safety_gbdt"):
            out = tmp_path / f"{model}.f32"
            proc = subprocess.run(
                ["java", "-cp", str(jar), "dev.scoregate.adserver.DumpRows", str(demo_dir / "export"), model,
                 str(context), str(out), *map(str, ads)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
            columns = np.arange(64) if model == "all" else np.array(export.index["models"][model]["columns"])
            got = np.fromfile(out, dtype="<f4").reshape(30, len(columns))
            assert np.array_equal(got.view(np.uint32), np.ascontiguousarray(want[:, columns]).view(np.uint32)), model
        assert "30 rows x 64 features (3 runs)" in subprocess.run(
            ["java", "-cp", str(jar), "dev.scoregate.adserver.DumpRows", str(demo_dir / "export"), "all", "0",
             str(tmp_path / "x.f32"), *map(str, ads)],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip


def test_ad_server_runs_auctions_through_the_in_process_bridge(demo_dir: Path, jar: Path) -> None:
    # A generous deadline: this checks that every request is served correctly, not how fast a shared machine is
    # (on a loaded 2-core box a queued call now and then waits past the default 50 ms).
    proc = _serve(demo_dir, jar, "--duration", "3", "--threads", "2", "--timeout-ms", "2000")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("scoregate ad server: 50,000 users, 100,000 ads, 4,096 pooled contexts"), lines[:3]
    assert "200 candidates/request -> early_rank_pctr_lr keeps 50 -> pctr_gbdt (pctr)" in lines[1]
    assert "brand_safety_gbdt (brand_safety), in parallel" in lines[1]
    live = [m for m in map(LIVE.match, lines) if m]
    assert len(live) >= 2, proc.stdout
    for m in live:
        assert int(m[1].replace(",", "")) > 0 and m[7] == "0", m[0]  # requests flowing, no errors
        assert float(m[5]) > 90.0 and float(m[6]) > 1.0, m[0]  # auctions clear above the $1 reserve
    summary = proc.stdout[proc.stdout.index("\n\n") :]
    totals = re.search(r"([\d,]+) requests in .*, ([\d,]+) model calls .*, ([\d,]+) errors", summary)
    cleared = re.search(r"auctions: ([\d,]+) cleared of ([\d,]+) requests", summary)
    assert totals and cleared, summary
    requests, calls, errors = (int(x.replace(",", "")) for x in totals.groups())
    assert requests > 0 and errors == 0 and calls == 5 * requests  # early ranker + 4 full-scoring models
    assert int(cleared[1].replace(",", "")) > 0.9 * requests
    # CTV requests are ad breaks (about 15 % of the pooled contexts): filled under separation, 1-4 ads each.
    breaks = re.search(r"CTV ad breaks: ([\d,]+), ([\d.]+) ads and ([\d.]+) s filled per break", summary)
    assert breaks, summary
    assert 0.05 * requests < int(breaks[1].replace(",", "")) < 0.3 * requests
    assert 1.0 <= float(breaks[2]) <= 4.0 and 0 < float(breaks[3]) <= 120
    assert "errors: none" in summary
    assert "Exception" not in proc.stderr, proc.stderr[-3000:]


def test_ad_server_refuses_a_model_the_gateway_does_not_serve(demo_dir: Path, jar: Path) -> None:
    proc = _serve(demo_dir, jar, "--duration", "1", "--models", "pctr_gbdt,no_such_model", timeout=60)
    assert proc.returncode != 0
    assert "no_such_model" in proc.stderr
