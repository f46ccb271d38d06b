"""Bridge stress: many Java threads, several models, every result checked against direct ONNX Runtime.

``python -m perf.stress --calls 1000000 --threads 64 --json perf/out/stress.json``

Hosts a JVM (JPype), serves three demo models that share the 64-feature input (``pctr_gbdt``,
``pctr_mlp``, ``pconversion_gbdt``) through the in-process bridge, and lets ``LoadDriver`` run
``--calls`` calls from ``--threads`` Java threads, round-robin over the models, ``--rows`` rows per
call taken from a random offset of a marketplace feature matrix. Each output is compared with the
same row scored by a plain ``onnxruntime.InferenceSession`` in one big batch: tree models must match
bit for bit; MLPs within 1e-6 (GEMM kernels differ slightly by batch size). Reports throughput,
latency percentiles, mismatches and the process's resident memory before and after.

``--canary PCT`` serves the three models from an artifact store at version 1 and runs a canary of
version 2 (the same ONNX file, so every output is still checked) at ``PCT`` %; every call carries a
routing key (one of ``--keys``). Reports the share of each model's calls version 2 scored (as each
result's ``servedBy`` says) and the calls whose (model, key) reached another version than before.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("pctr_gbdt", "pctr_mlp", "pconversion_gbdt")
ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    """Resident set size of this process (Python, ONNX Runtime and the JVM together), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


STORE_DIR = ROOT / "build" / "perf" / "stress-store"


def _canary_engine(demo_dir: Path, pct: float) -> tuple[Any, Any]:
    """An engine over a fresh store holding the models at versions 1 (live) and 2, and a canary of 2 at ``pct``."""
    import shutil

    from gateway.engine import Engine
    from gateway.rollout import RolloutController
    from models.demo.publish import publish_demo
    from models.manager import ManagerOptions
    from models.store import ArtifactStore

    shutil.rmtree(STORE_DIR, ignore_errors=True)
    store = ArtifactStore(STORE_DIR)
    for version in ("1", "2"):
        publish_demo(demo_dir, store, version, names=MODELS)
    engine = Engine.from_store(
        store, manager_options=ManagerOptions(interval_s=0.0), require_validation=False, serve_latest=False
    )
    for name in MODELS:
        engine.manager.set_aspired(name, ["1"])
    assert engine.manager.converge(120), "version 1 did not load"
    rollouts = RolloutController(engine)
    for name in MODELS:
        applied = rollouts.deploy(name, "2", canary_pct=pct)
        if not applied.ok:
            raise RuntimeError(f"canary of {name}@2: {applied.error}")
    return engine, rollouts


def run(
    calls: int, threads: int, rows: int, demo_dir: Path, tolerance: float = 1e-6, canary: float = 0.0, keys: int = 0
) -> dict[str, Any]:
    import jpype
    import onnxruntime as ort

    from gateway.engine import Engine
    from gateway.runtime import ModelRuntime
    from jvm_bridge.inprocess import InProcessHost, InProcessOptions
    from jvm_bridge.jvm import start_jvm
    from models.demo import demo_features, load_demo_manifests

    manifests = {m.name: m for m in load_demo_manifests(demo_dir)}
    paths = {name: demo_dir / "models" / name / manifests[name].version / manifests[name].onnx_file for name in MODELS}
    n_rows = 8192
    x = demo_features(demo_dir, manifests[MODELS[0]], rows=n_rows, seed=2026)
    expected = []
    for name in MODELS:
        session = ort.InferenceSession(str(paths[name]), providers=["CPUExecutionProvider"])
        expected.append(session.run(["score"], {"features": x})[0].astype(np.float32))

    start_jvm()
    rollouts = None
    if canary > 0:
        engine, rollouts = _canary_engine(demo_dir, canary)
    else:
        engine = Engine([ModelRuntime.load(paths[n], name=n, version=manifests[n].version) for n in MODELS])
        keys = 0
    nio = jpype.JPackage("java.nio")
    inputs = nio.ByteBuffer.allocateDirect(x.nbytes).order(nio.ByteOrder.nativeOrder())
    np.frombuffer(memoryview(inputs), dtype=np.float32)[:] = x.reshape(-1)
    want = jpype.JArray(jpype.JFloat, 2)([jpype.JArray(jpype.JFloat)(e.tolist()) for e in expected])
    driver = jpype.JClass("dev.scoregate.bridge.inprocess.LoadDriver")
    with InProcessHost(engine, InProcessOptions(workers=2)) as host:
        gateway = jpype.JClass("dev.scoregate.bridge.ModelGateways").get()
        models = jpype.JArray(jpype.JString)(list(MODELS))
        # Warm up (JIT, ONNX Runtime arenas, view caches) before the "before" memory reading.
        driver.run(gateway, models, 64, rows, inputs, n_rows, want, tolerance, threads, 2000, int(60e9), 10_000, 1)
        system = jpype.JClass("java.lang.System")

        def settled_rss() -> float:
            # A full GC first: the JVM grows its heap under allocation pressure (garbage, not a leak) and G1
            # gives the unused part back after a full collection; what remains is what is really held.
            system.gc()
            return rss_mb()

        before = settled_rss()
        t0 = time.perf_counter()
        # Two halves, so that growth in the first half (caches filling) and in the second (a leak) show apart.
        first = calls // 2
        reports = [driver.run(gateway, models, 64, rows, inputs, n_rows, want, tolerance, threads, first,
                              int(3600e9), 10_000, 2, keys)]  # fmt: skip
        middle = settled_rss()
        reports.append(driver.run(gateway, models, 64, rows, inputs, n_rows, want, tolerance, threads,
                                  calls - first, int(3600e9), 10_000, 3, keys))  # fmt: skip
        wall = time.perf_counter() - t0
        after = settled_rss()
        stats = host.stats()
    if rollouts is not None:
        rollouts.close()
    engine.close()
    lat = np.concatenate([np.asarray(r.latenciesNanos(), dtype=np.int64) for r in reports])
    served: dict[str, int] = {}
    for r in reports:
        for ref, count in dict(r.servedBy()).items():
            served[str(ref)] = served.get(str(ref), 0) + int(count)
    canary_doc: dict[str, Any] = {}
    if canary > 0:
        shares = {}
        for name in MODELS:
            total = sum(c for ref, c in served.items() if ref.split("@")[0] == name)
            shares[name] = round(served.get(f"{name}@2", 0) / max(1, total), 4)
        canary_doc = {
            "canary_pct": canary,
            "keys": keys,
            "canary_share": shares,
            "served_by": served,
            "unsticky": int(sum(int(r.unsticky()) for r in reports)),
        }
    return {
        "calls": int(sum(int(r.calls()) for r in reports)),
        "threads": threads,
        "rows_per_call": rows,
        "models": list(MODELS),
        "errors": int(sum(int(r.errors()) for r in reports)),
        "first_error": next((str(r.firstError()) for r in reports if r.firstError() is not None), None),
        "mismatches": int(sum(int(r.mismatches()) for r in reports)),
        "tolerance": tolerance,
        "elapsed_s": round(wall, 3),
        "throughput_per_s": round(sum(int(r.calls()) for r in reports) / wall, 1),
        "p50_us": round(float(np.percentile(lat, 50)) / 1e3, 1) if lat.size else None,
        "p99_us": round(float(np.percentile(lat, 99)) / 1e3, 1) if lat.size else None,
        "rss_before_mb": round(before, 1),
        "rss_half_mb": round(middle, 1),
        "rss_after_mb": round(after, 1),
        "onnx_runs": stats["batches"],
        "requests_per_onnx_run": round(stats["requests"] / max(1, stats["batches"]), 2),
        "early_answers": stats["early_answers"],
        **canary_doc,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.stress", description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1_000_000, help="calls in total (default %(default)s)")
    p.add_argument("--threads", type=int, default=64, help="Java request threads (default %(default)s)")
    p.add_argument("--rows", type=int, default=8, help="rows per call (default %(default)s)")
    p.add_argument("--demo-dir", type=Path, default=ROOT / "build" / "demo")
    p.add_argument("--json", type=Path, help="write the report here too")
    p.add_argument("--canary", type=float, default=0.0, metavar="PCT", help="run a canary of version 2 at PCT %%")
    p.add_argument("--keys", type=int, default=100_000, help="routing keys the calls draw from, with --canary")
    args = p.parse_args(argv)
    doc = run(args.calls, args.threads, args.rows, args.demo_dir, canary=args.canary, keys=args.keys)
    text = json.dumps(doc, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    ok = doc["errors"] == 0 and doc["mismatches"] == 0 and doc["calls"] == args.calls
    if args.canary > 0:  # every model's share within a percentage point of the canary's, and every key sticky
        ok = ok and doc["unsticky"] == 0
        ok = ok and all(abs(share - args.canary / 100) <= 0.01 for share in doc["canary_share"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
