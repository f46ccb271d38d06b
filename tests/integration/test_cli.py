"""The gateway's command line: the demo job that `make run` runs, and the model listing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_demo_prints_live_figures_and_a_closing_table(demo_dir: Path) -> None:
    proc = _run("demo", "--demo-dir", str(demo_dir), "--duration", "3", "--candidates", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("scoregate demo: 24 models loaded, 22 ranking models per request, 100 candidates")
    live = [line for line in lines if line.startswith("t=")]
    assert len(live) >= 2 and all("requests/s" in line and "p99" in line for line in live)
    closing = next(line for line in lines if " requests in " in line)
    assert ", 0 errors;" in closing
    assert (
        sum(1 for line in lines if line.startswith(("pctr_", "pcompletion_", "pconversion_", "brand_", "early_"))) == 22
    )


def test_demo_without_models_says_how_to_build_them(tmp_path: Path) -> None:
    proc = _run("demo", "--demo-dir", str(tmp_path))
    assert proc.returncode == 2 and "make setup" in proc.stderr


def test_models_lists_signatures(demo_dir: Path) -> None:
    proc = _run("models", str(demo_dir / "models"))
    assert proc.returncode == 0, proc.stderr
    assert "ModelRuntime('pctr_gbdt', features: float32[batch, 64] -> score: float32[batch])" in proc.stdout
    assert len(proc.stdout.splitlines()) == 24


def test_help_names_the_commands() -> None:
    proc = _run("--help")
    assert proc.returncode == 0 and "demo" in proc.stdout and "models" in proc.stdout
