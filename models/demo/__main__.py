"""Command line: ``python -m models.demo build --out build/demo [--seed N] [--force] [--quiet]``.

``build`` builds the demo (idempotent; see :mod:`models.demo.build`) and prints a summary table with each model's
holdout AUC, log loss, calibration ratio and build seconds. ``show --out DIR`` prints the table of an existing build.
``export --out DIR [--contexts N]`` (re)writes the feature export for the Java ad server (:mod:`models.demo.export`)
of an existing build; ``build`` writes it too. Exit status: 0 on success, 2 on bad arguments, 1 when ``show`` or
``export`` finds an incomplete build.
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
    export = sub.add_parser("export", help="write the feature export for the Java ad server of an existing build")
    export.add_argument("--out", required=True)
    export.add_argument("--contexts", type=int, default=None, help="pooled request contexts (default 4096)")
    args = parser.parse_args(argv)

    from models.demo.build import Built, build_demo, summary_table
    from models.demo.catalog import CATALOG_NAMES
    from models.demo.layout import load_demo_manifests

    if args.command == "export":
        return _export(args.out, args.contexts)
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
    print(_describe_export(args.out))
    return 0


def _export(out: str, contexts: int | None) -> int:
    from models.demo.catalog import CATALOG_NAMES
    from models.demo.export import DEFAULT_CONTEXTS, write_export
    from models.demo.layout import load_demo_manifests
    from models.synth import WorldConfig, make_world

    manifests = load_demo_manifests(out)
    if not {m.name for m in manifests} >= CATALOG_NAMES:
        print(f"{out} holds no complete demo build; run 'python -m models.demo build --out {out}'", file=sys.stderr)
        return 1
    write_export(
        out,
        make_world(WorldConfig(seed=manifests[0].seed)),
        manifests,
        DEFAULT_CONTEXTS if contexts is None else contexts,
    )
    print(_describe_export(out))
    return 0


def _describe_export(out: str) -> str:
    from models.demo.layout import export_dir

    directory = export_dir(out)
    size = sum(p.stat().st_size for p in directory.iterdir() if p.is_file())
    return f"feature export for the Java ad server: {directory} ({size / 1e6:.1f} MB)"


if __name__ == "__main__":
    sys.exit(main())
