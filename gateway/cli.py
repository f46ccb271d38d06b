"""``python -m gateway`` (also installed as ``scoregate``): the gateway's command line.

Commands::

    demo      load the demo models and drive ad-request traffic, printing live figures
    models    list the models in a directory with their signatures
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_DEMO_DIR = Path("build/demo")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gateway",
        description="Scoregate: a real-time model-serving gateway for ad decisioning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'make run' for the full set-up and demo.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="drive demo ad-request traffic through the demo models, printing live figures")
    demo.add_argument(
        "--demo-dir", type=Path, default=DEFAULT_DEMO_DIR, help="built demo (models/ and data/); default %(default)s"
    )
    demo.add_argument("--duration", type=float, default=20.0, help="seconds to run (default %(default)s)")
    demo.add_argument("--threads", type=int, default=2, help="request threads (default %(default)s)")
    demo.add_argument("--candidates", type=int, default=200, help="candidate ads per request (default %(default)s)")

    models = sub.add_parser("models", help="list the models in a directory and their signatures")
    models.add_argument(
        "directory", type=Path, nargs="?", default=DEFAULT_DEMO_DIR / "models", help="default %(default)s"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from gateway.demo import DemoOptions, run_demo

        if not (args.demo_dir / "models").is_dir():
            print(f"no demo models under {args.demo_dir}/models; build them with 'make setup'", file=sys.stderr)
            return 2
        summary = run_demo(DemoOptions(args.demo_dir, args.duration, args.threads, args.candidates))
        return 1 if summary.requests == 0 else 0
    if args.command == "models":
        from gateway.engine import Engine

        engine = Engine.from_directory(args.directory)
        for name in engine.names():
            print(repr(engine.runtime(name)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
