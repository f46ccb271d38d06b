"""Monitoring reports: the snapshot (plain JSON-able data), its text rendering, and the PNG plots.

``scoregate monitor report SNAPSHOT.json`` reads a snapshot that :meth:`Monitor.write_snapshot` wrote and prints it
as text (or re-emits it with ``--json``); ``--plots DIR`` draws ``latency.png`` (percentiles per model),
``drift.png`` (score PSI and the worst feature's PSI over their thresholds, against rows seen) and
``reliability.png`` (predicted against observed per equal-count bin). Matplotlib is imported only to plot.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.monitoring.monitor import Monitor

__all__ = ["build_snapshot", "plot_all", "render_text"]

SNAPSHOT_FORMAT = "scoregate.monitor/1"


def build_snapshot(monitor: Monitor) -> dict[str, Any]:
    models: list[dict[str, Any]] = []
    for (model, version), w in sorted(monitor._watched.items()):
        k = w.key
        entry: dict[str, Any] = {
            "model": model,
            "version": version,
            "stage": k.stage,
            "calls": w.calls,
            "rows": w.rows,
            "dropped_rows": w.dropped,
            "nonfinite_scores": w.nonfinite_scores,
            "mean_batch": w.batch_sum / w.calls if w.calls else 0.0,
        }
        if k in monitor.latency.series():
            entry["latency_us"] = monitor.latency.percentiles_us(k)
            entry["latency_hdr"] = monitor.latency.encoded(k)
        if w.shift is not None:
            d = w.shift
            entry["prediction_shift"] = {
                "alarm": d.alarm,
                "alarms": d.alarms,
                "psi_threshold": float(d.reference.psi_threshold[0]),
                "js_threshold": float(d.reference.js_threshold[0]),
                "history": [[e.rows, e.time, float(e.psi[0]), float(e.js[0]), float(e.ratio[0])] for e in d.history],
            }
        if w.drift is not None:
            det = w.drift.detector
            entry["feature_drift"] = {
                "alarm": det.alarm,
                "alarms": det.alarms,
                "top": [asdict(f) for f in w.drift.top(5)],
                "history": [
                    [e.rows, e.time, float(e.ratio.max()), w.drift.names[int(e.ratio.argmax())]] for e in det.history
                ],
            }
        models.append(entry)
    calibration = []
    for model, segment in monitor.calibration.groups():
        r = monitor.calibration.report(model, segment)
        item = {"model": model, "segment": segment, **asdict(r)}
        drift = monitor.calibration.drift(model) if segment == "" else None
        if drift is not None:
            item["ratio_drift"] = {
                "alarm": drift.alarm,
                "alarms": drift.alarms,
                "reference_ratio": drift.reference_ratio,
            }
        calibration.append(item)
    gates = [{**asdict(g.status()), "decision": g.status().decision.value} for g in monitor.gates]
    return {
        "format": SNAPSHOT_FORMAT,
        "time": monitor.clock(),
        "models": models,
        "calibration": calibration,
        "labels": asdict(monitor.join.counters) | {"pending": monitor.join.pending},
        "gates": gates,
        "unwatched_calls": monitor.unwatched_calls,
        "requests": {
            "seen": monitor.requests_seen,
            "degraded": monitor.requests_degraded,
            "latency_us": {k.stage: monitor.requests.percentiles_us(k) for k in _in_stage_order(monitor)},
        },
    }


def _in_stage_order(monitor: Monitor) -> list[Any]:
    staging = monitor._requests
    order = {s: i for i, s in enumerate((*staging.stages, "total"))} if staging is not None else {}
    return sorted(monitor.requests.series(), key=lambda k: (order.get(k.stage, len(order)), k.stage))


def render_text(snap: Mapping[str, Any]) -> str:
    lines = [f"scoregate monitor report ({len(snap['models'])} model versions)", ""]
    lines.append(f"{'model':28s} {'ver':>4s} {'calls':>9s} {'rows':>11s} {'p50 us':>9s} {'p99 us':>9s} "
                 f"{'p99.9 us':>9s} {'score PSI':>9s} {'shift':>6s} {'drift':>6s}")  # fmt: skip
    for m in snap["models"]:
        lat = m.get("latency_us", {})
        shift = m.get("prediction_shift")
        drift = m.get("feature_drift")
        psi = shift["history"][-1][2] if shift and shift["history"] else float("nan")
        lines.append(
            f"{m['model']:28s} {m['version']:>4s} {m['calls']:>9d} {m['rows']:>11d} {lat.get('p50', 0.0):>9.1f} "
            f"{lat.get('p99', 0.0):>9.1f} {lat.get('p99.9', 0.0):>9.1f} {psi:>9.4f} "
            f"{('ALARM' if shift and shift['alarm'] else 'ok') if shift else '-':>6s} "
            f"{('ALARM' if drift and drift['alarm'] else 'ok') if drift else '-':>6s}"
        )
        if drift and drift["top"]:
            tops = ", ".join(f"{t['name']} (PSI {t['psi']:.3f}, x{t['ratio']:.1f})" for t in drift["top"])
            lines.append(f"    drifting features: {tops}")
        if m["dropped_rows"] or m["nonfinite_scores"]:
            lines.append(f"    dropped rows {m['dropped_rows']}, non-finite scores {m['nonfinite_scores']}")
    if snap["calibration"]:
        lines += ["", f"{'calibration':28s} {'segment':>12s} {'n':>9s} {'pos':>7s} {'ratio':>7s} {'ECE':>8s} "
                      f"{'NE':>6s}  flag"]  # fmt: skip
        for c in snap["calibration"]:
            flag = "MISCALIBRATED" if c["flagged"] else "ok"
            if c.get("ratio_drift", {}).get("alarm"):
                flag += " RATIO-DRIFT"
            lines.append(
                f"{c['model']:28s} {c['segment'] or '(all)':>12s} {c['n']:>9d} {c['positives']:>7d} "
                f"{c['ratio']:>7.3f} {c['ece']:>8.5f} {c['normalized_entropy']:>6.3f}  {flag}"
            )
    req = snap.get("requests", {})
    if req.get("seen"):
        lines += ["", f"requests: {req['seen']} answered, {req['degraded']} degraded (a model fell back or was late)"]
        for stage, lat in req["latency_us"].items():
            lines.append(
                f"    {stage:24s} p50 {lat.get('p50', 0.0):>9.1f} us  p99 {lat.get('p99', 0.0):>9.1f} us  "
                f"p99.9 {lat.get('p99.9', 0.0):>9.1f} us"
            )
    lab = snap["labels"]
    lines += ["", "labels: " + ", ".join(f"{k} {v}" for k, v in lab.items())]
    for g in snap["gates"]:
        lines.append(
            f"gate {g['model']} {g['live_version']} -> {g['candidate_version']}: {g['decision']} after "
            f"{g['requests']} requests; {g['reason'] or 'no decision yet'}"
        )
    return "\n".join(lines) + "\n"


def plot_all(snap: Mapping[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write ``latency.png``, ``drift.png`` and ``reliability.png`` into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from hdrh.histogram import HdrHistogram

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(8, 4.5))
    percentiles = [50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99]
    for m in snap["models"]:
        if "latency_hdr" not in m:
            continue
        h = HdrHistogram.decode(m["latency_hdr"].encode("ascii"))
        xs = [1.0 / (1.0 - p / 100.0) for p in percentiles]
        ax.plot(
            xs,
            [h.get_value_at_percentile(p) / 1e3 for p in percentiles],
            marker="o",
            label=f"{m['model']} v{m['version']}",
        )
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - p / 100.0) for p in percentiles], [f"p{p:g}" for p in percentiles], fontsize=7)
    ax.set_ylabel("latency (µs)")
    ax.set_title("scoring latency by percentile")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    paths.append(out / "latency.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for m in snap["models"]:
        if "prediction_shift" in m and m["prediction_shift"]["history"]:
            h = m["prediction_shift"]["history"]
            ax.plot([r[0] for r in h], [r[4] for r in h], label=f"{m['model']} score PSI / threshold")
        if "feature_drift" in m and m["feature_drift"]["history"]:
            h = m["feature_drift"]["history"]
            ax.plot([r[0] for r in h], [r[2] for r in h], linestyle="--", label=f"{m['model']} worst feature")
    ax.axhline(1.0, color="red", linewidth=0.8)
    ax.set_xlabel("rows seen")
    ax.set_ylabel("PSI / threshold")
    ax.set_title("drift over time (alarm above 1)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    paths.append(out / "drift.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = 0.0
    for c in snap["calibration"]:
        if c["segment"] or not c["bin_predicted"]:
            continue
        ax.plot(c["bin_predicted"], c["bin_observed"], marker="o", label=f"{c['model']} (ratio {c['ratio']:.2f})")
        top = max(top, *c["bin_predicted"], *c["bin_observed"])
    top = top or 1.0
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, label="calibrated")
    ax.set_xlabel("mean predicted (equal-count bins)")
    ax.set_ylabel("observed rate")
    ax.set_title("reliability diagram")
    ax.legend(fontsize=7)
    paths.append(out / "reliability.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths
