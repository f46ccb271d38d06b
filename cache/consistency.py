"""Online/offline consistency: served feature values compared with the values the offline builder recomputes.

For every row of a served-feature log (:mod:`cache.servelog`) the offline side recomputes the
row's features as of the request's time (:mod:`cache.pointintime`, from the tables and update
logs the cache was fed from) and :func:`compare` counts, per feature, over all rows:

* **mismatch**: both sides had a value (or neither had, and both should be the default) and they
  differ beyond ``atol + rtol * |offline|``;
* **missing**: offline had a value, online served the default (entity missing online, read past
  the deadline, cluster down). When the log does not say which groups were present (the Java
  reader's rows), a served value equal to the default where offline differs counts as missing;
* **extra**: online served a stored value where offline had none yet (a value from the future,
  or written online without going through the logged feed);

and the value deltas (served - offline) over rows where both had a value. A feature is
*skewed* when its mismatch + missing + extra rate exceeds ``max_rate`` (default 0: any).

:func:`check` runs the whole comparison from files; :func:`main` is the command line
(``python -m gateway features consistency``), printing text or JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.pointintime import FeatureHistory, OfflineFeatures, build_training_set
from cache.registry import FeatureRegistry
from cache.servelog import ServedRows, read_served

__all__ = ["ConsistencyReport", "FeatureConsistency", "add_arguments", "check", "compare", "main"]

FORMAT = "scoregate.feature-consistency/1"


@dataclass(frozen=True)
class FeatureConsistency:
    """One feature's agreement between served and recomputed values."""

    feature: str
    group: str
    rows: int
    mismatches: int
    missing: int
    extra: int
    #: Rows where both sides had a value (the deltas are over these).
    compared: int
    mean_delta: float
    mean_abs_delta: float
    p99_abs_delta: float
    max_abs_delta: float

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.rows if self.rows else 0.0

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    @property
    def extra_rate(self) -> float:
        return self.extra / self.rows if self.rows else 0.0

    @property
    def issue_rate(self) -> float:
        return (self.mismatches + self.missing + self.extra) / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class ConsistencyReport:
    rows: int
    requests: int
    atol: float
    rtol: float
    max_rate: float
    features: tuple[FeatureConsistency, ...]
    #: Features the offline side could not recompute (no history, not logged inline): not compared.
    not_recomputed: tuple[str, ...] = field(default=())

    @property
    def skewed(self) -> tuple[str, ...]:
        """Features past ``max_rate``, worst first."""
        bad = [f for f in self.features if f.issue_rate > self.max_rate]
        return tuple(f.feature for f in sorted(bad, key=lambda f: (-f.issue_rate, -f.max_abs_delta)))

    @property
    def mismatches(self) -> int:
        return sum(f.mismatches for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        features = []
        for f in self.features:
            d = asdict(f)
            d.update(mismatch_rate=f.mismatch_rate, missing_rate=f.missing_rate, extra_rate=f.extra_rate)
            features.append(d)
        return {
            "format": FORMAT,
            "rows": self.rows,
            "requests": self.requests,
            "atol": self.atol,
            "rtol": self.rtol,
            "max_rate": self.max_rate,
            "mismatches": self.mismatches,
            "missing": sum(f.missing for f in self.features),
            "extra": sum(f.extra for f in self.features),
            "skewed": list(self.skewed),
            "not_recomputed": list(self.not_recomputed),
            "features": features,
        }

    def render_text(self, limit: int = 20) -> str:
        d = self.to_dict()
        lines = [
            f"feature consistency: {self.rows} served rows of {self.requests} requests x {len(self.features)} features",
            f"  mismatches {d['mismatches']}, missing {d['missing']}, extra {d['extra']} "
            f"(tolerance {self.atol:g} + {self.rtol:g}*|offline|)",
        ]
        if self.not_recomputed:
            lines.append(f"  not recomputed (no offline source): {', '.join(self.not_recomputed)}")
        skewed = self.skewed
        if not skewed:
            lines.append("  no skewed feature")
            return "\n".join(lines) + "\n"
        lines.append(f"  skewed features ({len(skewed)}), worst first:")
        lines.append(f"    {'feature':32} {'mismatch':>9} {'missing':>9} {'extra':>9} {'mean d':>10} {'max |d|':>10}")
        by_name = {f.feature: f for f in self.features}
        for name in skewed[:limit]:
            f = by_name[name]
            lines.append(
                f"    {name:32} {f.mismatch_rate:9.2%} {f.missing_rate:9.2%} {f.extra_rate:9.2%} "
                f"{f.mean_delta:10.4g} {f.max_abs_delta:10.4g}"
            )
        if len(skewed) > limit:
            lines.append(f"    ... {len(skewed) - limit} more (--json for all)")
        return "\n".join(lines) + "\n"


def compare(
    served: ServedRows,
    offline: OfflineFeatures,
    registry: FeatureRegistry,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    max_rate: float = 0.0,
    not_recomputed: Sequence[str] = (),
) -> ConsistencyReport:
    """Compare ``served`` with ``offline`` (same rows, same features, same group order). Vectorized per feature."""
    if served.feature_names != offline.feature_names or served.groups != offline.groups:
        raise ValueError("served and offline rows have different features or groups")
    n = len(served)
    if offline.matrix.shape[0] != n:
        raise ValueError(f"{n} served rows but {offline.matrix.shape[0]} offline rows")
    plan = registry.resolve(served.feature_names)
    col_group = np.empty(len(served.feature_names), dtype=np.intp)
    for gi, (_, dst) in enumerate(plan.values()):
        col_group[dst] = gi
    s, o = served.features, offline.matrix
    defaults = np.empty(len(served.feature_names), dtype=np.float32)
    for g, (src, dst) in plan.items():
        defaults[dst] = registry.group(g).defaults[src]
    sp = served.present[:, col_group]  # [n, F]: served a stored value
    op = offline.present[:, col_group]
    close = np.abs(s - o) <= atol + rtol * np.abs(o)
    # rows whose presence was not logged: a default where offline differs means the default was served
    guessed_missing = ~served.present_known[:, None] & (s == defaults) & op & ~close
    sp = sp & ~guessed_missing
    both = sp & op
    # neither side had a value: both should be the default, so a difference is a mismatch too
    mismatch = (both | (~sp & ~op)) & ~close
    missing = op & ~sp
    extra = sp & ~op
    delta = np.where(both, s - o, 0.0).astype(np.float64)
    skip = set(not_recomputed)
    features = []
    for j, name in enumerate(served.feature_names):
        if name in skip:
            continue
        k = int(both[:, j].sum())
        d = delta[both[:, j], j]
        ad = np.abs(d)
        features.append(
            FeatureConsistency(
                feature=name,
                group=served.groups[col_group[j]],
                rows=n,
                mismatches=int(mismatch[:, j].sum()),
                missing=int(missing[:, j].sum()),
                extra=int(extra[:, j].sum()),
                compared=k,
                mean_delta=float(d.mean()) if k else 0.0,
                mean_abs_delta=float(ad.mean()) if k else 0.0,
                p99_abs_delta=float(np.quantile(ad, 0.99)) if k else 0.0,
                max_abs_delta=float(ad.max()) if k else 0.0,
            )
        )
    return ConsistencyReport(
        rows=n,
        requests=int(np.unique(served.request_id).shape[0]),
        atol=atol,
        rtol=rtol,
        max_rate=max_rate,
        features=tuple(features),
        not_recomputed=tuple(not_recomputed),
    )


def check(
    log: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    registry: FeatureRegistry,
    histories: Mapping[str, FeatureHistory],
    *,
    atol: float = 1e-6,
    rtol: float = 1e-6,
    max_rate: float = 0.0,
) -> ConsistencyReport:
    """Read the served log, recompute its rows as of their request times, compare.

    Groups without a history (request-time groups such as the context profile) are taken from
    the log itself and reported under ``not_recomputed``.
    """
    served = read_served(log)
    skipped: list[str] = []
    inline: dict[str, npt.NDArray[np.float32]] = {}
    for g, (src, dst) in registry.resolve(served.feature_names).items():
        if g in histories:
            continue
        group = registry.group(g)
        block = np.empty((len(served), group.width), dtype=np.float32)
        block[:] = group.defaults
        block[:, src] = served.features[:, dst]
        inline[g] = block
        skipped.extend(served.feature_names[i] for i in dst.tolist())
    offline = build_training_set(registry, served.feature_names, served.keys, served.event_ms, histories, inline=inline)
    return compare(served, offline, registry, atol=atol, rtol=rtol, max_rate=max_rate, not_recomputed=skipped)


#: The marketplace's tables each group is loaded from (:mod:`models.synth.tables`).
MARKETPLACE_SOURCES = {"user_profile": "users.parquet", "ad_profile": "ads.parquet"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", type=Path, help="served-feature log: a directory of served-*.parquet, or one file")
    p.add_argument(
        "--tables",
        type=Path,
        help="directory of the marketplace's tables (users.parquet, ads.parquet) to recompute from",
    )
    p.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="GROUP=PATH",
        help="a Parquet file a group's values came from (snapshot or update log), repeatable, in load order",
    )
    p.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (default %(default)s)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance (default %(default)s)")
    p.add_argument(
        "--max-rate", type=float, default=0.0, help="issue rate above which a feature is skewed (default %(default)s)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--fail-on-skew", action="store_true", help="exit 1 when a feature is skewed")


def run(args: argparse.Namespace) -> int:
    """The ``features consistency`` command: 0 (or 1 with --fail-on-skew and a skew), 2 on bad input."""
    registry = FeatureRegistry.marketplace()
    sources: dict[str, list[Path]] = {}
    if args.tables is not None:
        for g, name in MARKETPLACE_SOURCES.items():
            if (args.tables / name).is_file():
                sources.setdefault(g, []).append(args.tables / name)
    for item in args.source:
        g, sep, path = item.partition("=")
        if not sep:
            print(f"--source {item!r}: expected GROUP=PATH", file=sys.stderr)
            return 2
        sources.setdefault(g, []).append(Path(path))
    if not sources:
        print("nothing to recompute from: give --tables DIR or --source GROUP=PATH", file=sys.stderr)
        return 2
    try:
        histories = {g: FeatureHistory.from_parquet(registry.group(g), paths) for g, paths in sources.items()}
        report = check(args.log, registry, histories, atol=args.atol, rtol=args.rtol, max_rate=args.max_rate)
    except (OSError, KeyError, ValueError) as exc:
        print(f"features consistency: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(report.render_text(), end="")
    return 1 if args.fail_on_skew and report.skewed else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cache.consistency", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
