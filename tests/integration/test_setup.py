"""`make setup` is idempotent: once done, make has nothing left to do."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None or not (ROOT / ".stamps").is_dir(), reason="set-up not run by make")
def test_setup_is_up_to_date_after_it_ran() -> None:
    proc = subprocess.run(
        ["make", "--question", "setup"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    assert proc.returncode == 0, f"make would redo set-up steps:\n{proc.stdout}{proc.stderr}"
    assert (ROOT / "build" / "jars" / "hazelcast-5.7.0.jar").stat().st_size > 10_000_000
