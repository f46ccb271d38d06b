"""Suite ``features``: hydrating one request's feature matrix from a real 2-member cluster on loopback.

For N candidates x F features (N = 100, 500, 2000; F = 32, 64, 128), one request reads one user,
one context and N ad profiles and assembles the ``[N, F]`` float32 matrix:

* **python_cold**: :class:`cache.hydrate.Hydrator`, the Hazelcast Python client (``get`` +
  ``get_all``; no near cache, which breaks ``get_all`` in that client);
* **java_cold**: :class:`jvm_bridge.features.JavaHydrator`, the Java client in the process's JVM,
  without a near cache: every read goes to the members, straight into an arena slot;
* **java_warm**: the same with a near cache on every group's map, after warm-up (hot entities).

Groups per F: user ``3F/8``, ad ``3F/8``, context ``F/4`` floats (F = 64 is the marketplace's
24/24/16). The cluster (two members, backup count 1) is started and loaded once by the parent
(``prepare``); forks connect to it through the address file it writes. Figures:
``hydrate_p99_ms_{cold,warm}_n500_f64`` (the Java path; targets <= 10 and <= 2) and the Python
path's ``hydrate_p99_ms_python_n500_f64``, ``python_over_java_p50_n500_f64``.

**Feast** (the peer): the full run also loads the F = 64 tables into Feast (PyPI ``feast``
``FEAST_VERSION``, SQLite online store: its Redis store needs a server) in its own venv under
``build/peers/feast`` (created on first use, a few minutes) and times ``get_online_features`` for
N = 500 (:mod:`perf.suites.feast_peer`); figure ``feast_over_scoregate_p50_n500`` is Feast's p50
over the Java cold path's.

The members have :data:`cache.member.FEATURE_PARTITIONS` partitions (31, not Hazelcast's 271:
fewer per-partition operations per ``getAll``, measured there).

Quick mode: F = 64 and N = 100, 500 only, fewer entities, and no Feast (creating its venv takes
minutes).
"""

from __future__ import annotations

import functools
import json
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from perf.harness import Case, Op, Result, Suite

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / "build" / "perf" / "features" / "cluster.json"
WIDTHS = (32, 64, 128)
ROWS = (100, 500, 2000)
PATHS = ("python_cold", "java_cold", "java_warm")
TIMEOUT_S = 1.0
#: Members started by ``prepare``; the parent keeps them until it exits (cache.member kills them then).
_MEMBERS: list[Any] = []
FEAST_VERSION = "0.67.0"
FEAST_VENV = ROOT / "build" / "peers" / "feast"
FEAST_RESULT = STATE.parent / "feast.json"


def _sizes(quick: bool) -> dict[str, int]:
    return {"user": 2_000, "ad": 5_000, "context": 200} if quick else {"user": 20_000, "ad": 50_000, "context": 1_000}


def _registry(width: int) -> Any:
    from cache.registry import Feature, FeatureGroup, FeatureRegistry

    split = {"user": 3 * width // 8, "ad": 3 * width // 8, "context": width // 4}

    def group(entity: str, slo: float) -> FeatureGroup:
        feats = tuple(Feature(f"x{i}", default=-1.0) for i in range(split[entity]))
        return FeatureGroup(f"bench_{entity}_f{width}", entity, feats, freshness_slo_s=slo)

    return FeatureRegistry([group("user", 6 * 3600.0), group("ad", 24 * 3600.0), group("context", 3600.0)])


def _names(width: int) -> list[str]:
    reg = _registry(width)
    return [n for g in reg.groups.values() for n in g.qualified()]


def _plan(quick: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return ((64,), (100, 500)) if quick else (WIDTHS, ROWS)


def _prepare(quick: bool) -> None:
    from cache.client import connect
    from cache.member import start_cluster
    from cache.store import FeatureWriter

    members = start_cluster(2, heap_mb=512)  # cache.member.FEATURE_PARTITIONS partitions
    _MEMBERS.extend(members)
    sizes = _sizes(quick)
    client = connect(members[0].options.cluster_name, [m.address for m in members])
    try:
        rng = np.random.default_rng(42)
        now_ms = int(time.time() * 1000)
        tables: dict[str, np.ndarray[Any, Any]] = {}
        for width in _plan(quick)[0]:
            reg = _registry(width)
            writer = FeatureWriter(client, reg)
            for group in reg.groups.values():
                n = sizes[group.entity]
                values = rng.standard_normal((n, group.width)).astype(np.float32)
                writer.put_many(group.name, np.arange(n), values, now_ms)
                if width == 64:
                    tables[group.entity] = values
    finally:
        client.shutdown()
    FEAST_RESULT.unlink(missing_ok=True)
    if not quick:
        _run_feast(tables, now_ms)
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(
        json.dumps({"cluster": members[0].options.cluster_name, "addresses": [m.address for m in members]}),
        encoding="utf-8",
    )


def _run_feast(tables: dict[str, np.ndarray[Any, Any]], event_ms: int) -> None:
    """Write the F = 64 tables as Parquet and time Feast on them in its venv (created when missing)."""
    import subprocess
    import sys

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = STATE.parent / "feast-data"
    data.mkdir(parents=True, exist_ok=True)
    for entity, values in tables.items():
        n = values.shape[0]
        columns = {"id": pa.array(np.arange(n, dtype=np.int64))}
        columns.update({f"x{i}": pa.array(values[:, i]) for i in range(values.shape[1])})
        columns["event_timestamp"] = pa.array(np.full(n, event_ms, dtype=np.int64)).cast(pa.timestamp("ms", "UTC"))
        pq.write_table(pa.table(columns), data / f"{entity}.parquet")
    python = FEAST_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FEAST_VENV)], check=True)
    installed = subprocess.run(
        [str(python), "-c", "import feast; print(feast.__version__)"], capture_output=True, text=True, check=False
    )
    if installed.stdout.strip() != FEAST_VERSION:
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, f"feast=={FEAST_VERSION}"], check=True)
    repo = STATE.parent / "feast-repo"
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    script = Path(__file__).with_name("feast_peer.py")
    cmd = [str(python), str(script), "--data", str(data), "--repo", str(repo), "--rows", "500", "--out"]
    subprocess.run([*cmd, str(FEAST_RESULT)], check=True)


@functools.cache
def _cluster() -> tuple[str, tuple[str, ...]]:
    state = json.loads(STATE.read_text(encoding="utf-8"))
    return state["cluster"], tuple(state["addresses"])


@functools.cache
def _python_client() -> Any:
    from cache.client import connect

    name, addresses = _cluster()
    return connect(name, addresses)


@functools.cache
def _java_client(near_cache: bool) -> Any:
    from jvm_bridge.features import JavaFeatureClient

    name, addresses = _cluster()
    groups = [g for w in WIDTHS for g in _registry(w).groups.values()] if near_cache else []
    return JavaFeatureClient(name, addresses, near_cache=groups)


def _requests(quick: bool, rows: int, count: int = 256) -> list[tuple[int, int, np.ndarray[Any, Any]]]:
    sizes = _sizes(quick)
    rng = np.random.default_rng(rows)
    return [
        (int(rng.integers(sizes["user"])), int(rng.integers(sizes["context"])), rng.choice(sizes["ad"], rows, False))
        for _ in range(count)
    ]


_KEEP = ExitStack()  # leases held for the life of the fork


def _setup(path: str, width: int, rows: int, quick: bool) -> Op:
    reg = _registry(width)
    names = _names(width)
    requests = _requests(quick, rows)
    state = {"i": 0}
    if path == "python_cold":
        from cache.hydrate import Hydrator

        hyd = Hydrator(_python_client(), reg, names)
        out = np.empty((rows, width), dtype=np.float32)

        def op() -> object:
            i = state["i"] = (state["i"] + 1) % len(requests)
            user, ctx, ads = requests[i]
            return hyd.hydrate(entities={"user": user, "context": ctx}, ads=ads, out=out, timeout_s=TIMEOUT_S)

        return op
    from jvm_bridge.features import JavaHydrator

    client = _java_client(path == "java_warm")
    jhyd = JavaHydrator(client.instance, reg, names, max_rows=max(ROWS), slots=1)
    lease = _KEEP.enter_context(jhyd.lease())

    def jop() -> object:
        i = state["i"] = (state["i"] + 1) % len(requests)
        user, ctx, ads = requests[i]
        return jhyd.hydrate(lease, entities={"user": user, "context": ctx}, ads=ads, timeout_s=TIMEOUT_S)

    # JIT-compile the reader and the client before measuring; for java_warm, also fill the near cache with every
    # request's entities (twice: the first pass populates it, the second runs on it).
    for _ in range(2 if path == "java_warm" else 1):
        for _ in requests:
            jop()
    return jop


def _cases(quick: bool) -> list[Case]:
    widths, rows_list = _plan(quick)
    cases: list[Case] = []
    for width in widths:
        for rows in rows_list:
            group = f"f{width}/n{rows}"
            for path in PATHS:
                params = {"path": path, "features": width, "rows": rows}
                cases.append(Case(path, params, functools.partial(_setup, path, width, rows, quick), group))
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    by = {(r.name, r.params["features"], r.params["rows"]): r for r in results}
    figures: dict[str, float] = {}
    for (path, width, rows), r in by.items():
        figures[f"hydrate_p50_ms_{path}_n{rows}_f{width}"] = r.percentile_us(50.0) / 1000.0
        figures[f"hydrate_p99_ms_{path}_n{rows}_f{width}"] = r.percentile_us(99.0) / 1000.0
    if ("java_cold", 64, 500) in by:
        figures["hydrate_p99_ms_cold_n500_f64"] = by[("java_cold", 64, 500)].percentile_us(99.0) / 1000.0
        figures["hydrate_p99_ms_warm_n500_f64"] = by[("java_warm", 64, 500)].percentile_us(99.0) / 1000.0
        figures["hydrate_p99_ms_python_n500_f64"] = by[("python_cold", 64, 500)].percentile_us(99.0) / 1000.0
        figures["python_over_java_p50_n500_f64"] = by[("python_cold", 64, 500)].percentile_us(50.0) / by[
            ("java_cold", 64, 500)
        ].percentile_us(50.0)
    if FEAST_RESULT.exists() and ("java_cold", 64, 500) in by:
        feast = json.loads(FEAST_RESULT.read_text(encoding="utf-8"))
        figures["feast_p50_ms_n500_f64"] = feast["p50_ms"]
        figures["feast_p99_ms_n500_f64"] = feast["p99_ms"]
        figures["feast_over_scoregate_p50_n500"] = feast["p50_ms"] / (
            by[("java_cold", 64, 500)].percentile_us(50.0) / 1000.0
        )
        figures["feast_over_scoregate_warm_p50_n500"] = feast["p50_ms"] / (
            by[("java_warm", 64, 500)].percentile_us(50.0) / 1000.0
        )
    return figures


SUITE = Suite(
    name="features",
    description="hydration of N x F feature rows from a 2-member cluster: Python client vs Java client (near cache)",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
