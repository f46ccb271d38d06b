"""Benchmark output: the JSON document, a Markdown table, and a latency-percentile plot (PNG).

JSON schema (``figures`` holds every number an issue's acceptance names, under that exact name)::

    {"suite": S, "quick": bool,
     "results": [{"name", "params", "n", "p50_us", "p99_us", "p999_us", "throughput_per_s"}],
     "figures": {NAME: number},
     "meta": {"created", "python", "machine", "cores", "plan"}}
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from perf.harness import Plan, Result

__all__ = ["document", "document_rows", "markdown", "plot_percentiles", "write_json"]

_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99)


def document(
    suite: str, quick: bool, results: Sequence[Result], figures: Mapping[str, float], plan: Plan
) -> dict[str, Any]:
    return document_rows(suite, quick, [r.to_json() for r in results], figures, plan.__dict__)


def document_rows(
    suite: str,
    quick: bool,
    rows: Sequence[Mapping[str, Any]],
    figures: Mapping[str, float],
    plan: Mapping[str, Any],
) -> dict[str, Any]:
    """As :func:`document`, for results measured without this harness's histograms (JMH's, say).

    Each row carries the schema's keys (a percentile that was not measured is 0) and may add its own.
    """
    return {
        "suite": suite,
        "quick": quick,
        "results": [dict(r) for r in rows],
        "figures": {k: round(float(v), 4) for k, v in figures.items()},
        "meta": {
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
            "plan": dict(plan),
        },
    }


def write_json(doc: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def markdown(doc: Mapping[str, Any]) -> str:
    """Results and figures as Markdown tables."""
    lines = [
        f"### Suite `{doc['suite']}`{' (quick)' if doc['quick'] else ''}",
        "",
        "| case | params | n | p50 µs | p99 µs | p99.9 µs | ops/s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in doc["results"]:
        params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
        lines.append(
            f"| {r['name']} | {params} | {r['n']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | "
            f"{r['p999_us']:.1f} | {r['throughput_per_s']:,.0f} |"
        )
    if doc["figures"]:
        lines += ["", "| figure | value |", "|---|---:|"]
        lines += [f"| `{k}` | {v:.3f} |" for k, v in doc["figures"].items()]
    return "\n".join(lines) + "\n"


def plot_percentiles(results: Sequence[Result], path: str | os.PathLike[str], title: str) -> None:
    """Latency against percentile (log-scaled tail), one line per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 6))
    xs = [1.0 / (1.0 - p / 100.0) for p in _PERCENTILES]
    # One colour per parameter set, one line style per case name: side-by-side cases share a colour.
    param_keys = list(dict.fromkeys(_params_label(r) for r in results))
    names = list(dict.fromkeys(r.name for r in results))
    cmap = plt.get_cmap("tab20" if len(param_keys) > 10 else "tab10")
    styles = ["-", "--", ":", "-."]
    for r in results:
        if r.n == 0:
            continue
        ys = [r.percentile_us(p) for p in _PERCENTILES]
        color = cmap(param_keys.index(_params_label(r)) % cmap.N)
        style = styles[names.index(r.name) % len(styles)]
        ax.plot(xs, ys, marker="o", markersize=3, color=color, linestyle=style, label=f"{r.name} {_params_label(r)}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"p{p:g}" for p in _PERCENTILES])
    ax.set_ylabel("latency (µs)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _params_label(r: Result) -> str:
    return ",".join(f"{k}={v}" for k, v in r.params.items())
