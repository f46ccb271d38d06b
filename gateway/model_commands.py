"""The model-lifecycle commands of the CLI: ``publish``, ``validate``, ``list``, ``status``.

Each command prints a table for people or, with ``--json``, one JSON document on stdout for scripts; progress bars
go to stderr. Exit codes: 0 success, 1 a package failed validation or a version failed to load, 2 bad usage or a
package that cannot be read or published (corrupt, checksum mismatch, existing version, unsafe name).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from models.ids import UnsafeNameError, parse_ref
from models.package import Package, PackageError, PackageExistsError, unpack
from models.store import ArtifactStore, read_archive
from models.validate import GATES, ValidationOptions, ValidationReport, validate_package

__all__ = ["add_commands", "run_command"]

DEFAULT_STORE = Path("build/store")
COMMANDS = ("publish", "validate", "list", "status")


def add_commands(sub: Any) -> None:  # argparse's _SubParsersAction is private
    """Add the lifecycle subcommands to the CLI's subparsers."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", type=Path, default=DEFAULT_STORE, help="artifact store directory (%(default)s)")
        p.add_argument("--json", action="store_true", help="print one machine-readable JSON document")

    publish = sub.add_parser(
        "publish",
        help="validate packages and publish them to the artifact store",
        description="Publish model packages (a directory with manifest.json, the ONNX file and reference.npz, or a "
        "package .tar). Every validation gate runs first; a package that fails any is not published. Versions are "
        "immutable: publishing an existing name@version is refused.",
    )
    publish.add_argument("sources", nargs="+", type=Path, metavar="PACKAGE", help="package directory or .tar")
    publish.add_argument("--no-validate", action="store_true", help="publish without running the gates")
    publish.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    common(publish)

    validate = sub.add_parser(
        "validate",
        help="run the validation gates on a package or a published version and print the report",
        description="Run every gate (ONNX checker, operator allow-list, signature, parity with the shipped "
        f"reference predictions, finite outputs, probability range, latency, calibration): {', '.join(GATES)}. "
        "Changes nothing.",
    )
    validate.add_argument("target", help="name@version in the store, or a package directory or .tar")
    validate.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    common(validate)

    listing = sub.add_parser("list", help="list published models, versions, digests and validation verdicts")
    common(listing)

    status = sub.add_parser(
        "status",
        help="load the latest version of every published model and report each version's state",
        description="Load what a gateway on this store would serve (the latest version of every model) through the "
        "version manager, and report every version's state: ready and live, or the error that kept it out. Only "
        "versions with a passing validation report load (publish writes one; --no-validate does not).",
    )
    status.add_argument("--max-model-bytes", type=int, default=0, help="refuse larger ONNX files (0: no limit)")
    common(status)


def run_command(args: argparse.Namespace) -> int:
    if args.command not in COMMANDS:
        raise ValueError(f"not a model command: {args.command!r}")
    try:
        if args.command == "publish":
            return _publish(args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "list":
            return _list(args)
        return _status(args)
    except (PackageError, UnsafeNameError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        if args.json:
            print(json.dumps({"error": type(exc).__name__, "message": message}))
        else:
            print(f"error: {message}", file=sys.stderr)
        return 2


def _run_gates(package: Package, progress: bool) -> ValidationReport:
    from tqdm import tqdm

    with tqdm(
        total=len(GATES), desc=f"validate {package.id}", unit="gate", disable=None if progress else True, leave=False
    ) as bar:

        def step(gate: str) -> None:
            bar.set_postfix_str(gate)
            bar.update(1)

        return validate_package(package, ValidationOptions(), step)


def _validate_source(source: Path | bytes, progress: bool, store: ArtifactStore | None = None) -> ValidationReport:
    """Validate a package that is not (yet) in the store; with ``store``, refuse an existing version first."""
    archive = read_archive(source)
    with tempfile.TemporaryDirectory(prefix="scoregate-validate-") as tmp:
        package = unpack(archive, Path(tmp) / "pkg")
        if store is not None and package.id.version in store.versions(package.id.name):
            raise PackageExistsError(f"{package.id} is already published (versions are immutable)")
        return _run_gates(package, progress)


def _publish(args: argparse.Namespace) -> int:
    store = ArtifactStore(args.store)
    results: list[dict[str, Any]] = []
    status = 0
    for source in args.sources:
        archive = read_archive(source)
        report = None
        if not args.no_validate:
            report = _validate_source(archive, not args.no_progress, store)
            if not report.passed:
                status = 1
                results.append({"source": str(source), "published": False, "validation": report.to_dict()})
                if not args.json:
                    print(report.render())
                    print(f"not published: {report.model} failed {', '.join(g.gate for g in report.failed)}")
                continue
        published = store.publish(archive)
        if report is not None:
            store.save_report(published.id.name, published.id.version, report.to_json())
        entry = {"source": str(source), "published": True, "model": str(published.id), "digest": published.digest}
        entry["bytes"] = published.size
        results.append(entry if report is None else {**entry, "validation": report.to_dict()})
        if not args.json:
            print(f"published {published.id} sha256:{published.digest[:12]} ({published.size} bytes)")
    if args.json:
        print(json.dumps({"store": str(args.store), "results": results}, indent=2))
    return status


def _validate(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.exists():
        report = _validate_source(target, not args.no_progress)
    else:
        name, version = parse_ref(args.target)
        if version is None:
            raise KeyError(f"{args.target!r} is neither a package path nor name@version")
        report = _run_gates(ArtifactStore(args.store).get(name, version), not args.no_progress)
    print(report.to_json() if args.json else report.render(), end="\n" if not args.json else "")
    return 0 if report.passed else 1


def _list(args: argparse.Namespace) -> int:
    store = ArtifactStore(args.store)
    rows = []
    for name in store.names():
        for version in store.versions(name):
            saved = store.report(name, version)
            verdict = "unvalidated" if saved is None else ("passed" if json.loads(saved)["passed"] else "failed")
            rows.append(
                {"model": name, "version": version, "digest": store.digest(name, version), "validation": verdict}
            )
    if args.json:
        print(json.dumps({"store": str(args.store), "versions": rows}, indent=2))
    else:
        print(f"{'model':<32} {'version':>8}  {'digest':<12}  validation")
        for r in rows:
            print(f"{r['model']:<32} {r['version']:>8}  {r['digest'][:12]}  {r['validation']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from gateway.engine import Engine
    from models.manager import ManagerOptions

    engine = Engine.from_store(
        args.store, manager_options=ManagerOptions(interval_s=0.0, max_model_bytes=args.max_model_bytes)
    )
    try:
        rows = [
            {
                "model": s.name,
                "version": s.version,
                "state": s.state.value,
                "live": s.live,
                "in_flight": s.in_flight,
                "error": s.error,
            }
            for s in engine.manager.status()
        ]
    finally:
        engine.close()
    if args.json:
        print(json.dumps({"store": str(args.store), "versions": rows}, indent=2))
    else:
        print(f"{'model':<32} {'version':>8}  {'state':<8} live  error")
        for r in rows:
            print(
                f"{r['model']:<32} {r['version']:>8}  {r['state']:<8} {'yes ' if r['live'] else 'no  '}  {r['error']}"
            )
    return 1 if any(r["state"] == "error" for r in rows) else 0
