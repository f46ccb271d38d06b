"""Command line: ``python -m models.demo build --out build/demo [--seed N] [--force] [--quiet]``.

``build`` builds the demo (idempotent; see :mod:`models.demo.build`) and prints a summary table with each model's
holdout AUC, log loss, calibration ratio and build seconds. ``show --out DIR`` prints the table of an existing build.
Exit status: 0 on success, 2 on bad arguments, 1 when ``show`` finds an incomplete build.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the demo marketplace and its 24 models")
    build.add_argument("--out", required=True, help="output directory (e.g. build/demo)")
    build.add_argument("--seed", type=int, default=0, help="data and training seed (default 0)")
    build.add_argument("--force", action="store_true", help="rebuild even if the output is complete")
    build.add_argument("--quiet", action="store_true", help="no progress bars")
    show = sub.add_parser("show", help="print the summary of an existing build")
    show.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    from models.demo.build import Built, build_demo, summary_table
    from models.demo.catalog import CATALOG_NAMES
    from models.demo.layout import load_demo_manifests

    if args.command == "show":
        manifests = load_demo_manifests(args.out)
        print(summary_table([Built(m, None) for m in manifests]))
        return 0 if {m.name for m in manifests} >= CATALOG_NAMES else 1

    rows: list[Built] = []
    start = time.perf_counter()
    build_demo(args.out, seed=args.seed, force=args.force, progress=not args.quiet, on_built=rows.append)
    print(summary_table(rows))
    cached = all(r.seconds is None for r in rows)
    verb = "already complete" if cached else "built"
    print(f"{len(rows)} models {verb} in {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
