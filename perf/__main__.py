"""``python -m perf``: run benchmark suites.

Examples::

    python -m perf list
    python -m perf run scoring --quick --json perf/out/scoring.json
    python -m perf run scoring            # full run: 3 forks x (3 warm-up + 5 measured) iterations
    python -m perf run jmh --quick        # JMH: ONNX Runtime's Java API vs the in-process bridge
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from perf.harness import Plan, fork_main, run_suite
from perf.report import document, markdown, plot_percentiles, write_json
from perf.suites import EXTERNAL, SUITES, load_external, load_suite


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m perf",
        description="Scoregate benchmarks: JMH-style forks, warm-up and measurement, HdrHistogram latencies. "
        "Writes JSON, a Markdown table and a percentile plot.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the suites")
    run = sub.add_parser("run", help="run one suite")
    run.add_argument("suite", choices=sorted([*SUITES, *EXTERNAL]), help="suite name")
    run.add_argument("--quick", action="store_true", help="shorter run (CI smoke): fewer, shorter iterations")
    run.add_argument("--json", metavar="FILE", help="JSON output (default perf/out/SUITE[-quick].json)")
    run.add_argument("--md", metavar="FILE", help="Markdown table output (default beside the JSON)")
    run.add_argument(
        "--plot", metavar="FILE", help="latency-percentile PNG (default beside the JSON; harness suites only)"
    )
    run.add_argument("--forks", type=int, help="override the number of forked processes")
    run.add_argument("--no-progress", action="store_true", help="hide progress bars")
    fork = sub.add_parser("fork", help=argparse.SUPPRESS)
    fork.add_argument("suite")
    fork.add_argument("--quick", action="store_true")
    fork.add_argument("--out", required=True)
    fork.add_argument("--plan", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        for name in sorted(SUITES):
            print(f"{name:12s} {load_suite(name).description}")
        for name in sorted(EXTERNAL):
            print(f"{name:12s} {load_external(name).description}")
        return 0
    if args.command == "run" and args.suite in EXTERNAL:
        return _run_external(args)
    suite = load_suite(args.suite)
    if args.command == "fork":
        fork_main(suite, args.quick, Plan(**json.loads(args.plan)), args.out)
        return 0
    plan = Plan.for_run(args.quick)
    if args.forks:
        plan = Plan(plan.warmup_iterations, plan.measurement_iterations, plan.iteration_seconds, args.forks)
    results = run_suite(suite, quick=args.quick, plan=plan, show_progress=not args.no_progress)
    doc = document(suite.name, args.quick, results, suite.figures(results), plan)
    json_path = Path(args.json or f"perf/out/{suite.name}{'-quick' if args.quick else ''}.json")
    write_json(doc, json_path)
    md_path = Path(args.md or json_path.with_suffix(".md"))
    md_path.write_text(markdown(doc), encoding="utf-8")
    plot_path = Path(args.plot or json_path.with_suffix(".png"))
    plot_percentiles(results, plot_path, f"{suite.name}{' (quick)' if args.quick else ''}: latency by percentile")
    print(markdown(doc))
    print(f"wrote {json_path}, {md_path}, {plot_path}")
    return 0


def _run_external(args: argparse.Namespace) -> int:
    """A suite another harness measures (JMH): its document, as JSON and Markdown; no plot."""
    suite = load_external(args.suite)
    doc = suite.run(args.quick, args.forks, not args.no_progress)
    json_path = Path(args.json or f"perf/out/{suite.name}{'-quick' if args.quick else ''}.json")
    write_json(doc, json_path)
    md_path = Path(args.md or json_path.with_suffix(".md"))
    text = markdown(doc) + suite.notes(doc)
    md_path.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {json_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
