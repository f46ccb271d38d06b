"""Set-up shared by the lifecycle suites (``hotswap``, ``rollout``, ``rotation``): the demo models published twice,
desired-state changes, and replica processes stopped."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"

__all__ = ["DEMO_DIR", "constant", "stop_processes", "two_version_store"]


def two_version_store(store_dir: Path, names: Iterable[str] | None = None) -> Any:
    """A fresh artifact store at ``store_dir`` with the built demo's models (all, or ``names``) published as versions
    1 and 2 (the demo is built first if it is not)."""
    from models.demo import build_demo
    from models.demo.publish import publish_demo
    from models.store import ArtifactStore

    build_demo(DEMO_DIR, progress=False)
    shutil.rmtree(store_dir, ignore_errors=True)
    store = ArtifactStore(store_dir)
    wanted = None if names is None else list(names)
    for version in ("1", "2"):
        publish_demo(DEMO_DIR, store, version, names=wanted)
    return store


def constant(state: Any) -> Callable[[Any], Any]:
    """A desired-state change (``gateway.rollout_control.change_desired``) that sets ``state``, whatever was there."""
    return lambda _current: state


def stop_processes(procs: Iterable[subprocess.Popen[str]], stop: Callable[[subprocess.Popen[str]], None]) -> None:
    """``stop`` each process (close its stdin, signal it), then wait for each: killed after 30 s."""
    procs = list(procs)
    for proc in procs:
        stop(proc)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
