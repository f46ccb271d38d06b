"""The model-lifecycle commands of the CLI: ``publish``, ``validate``, ``list``, ``status``, and the rollout
commands ``deploy``, ``promote``, ``rollback``.

Each command prints a table for people or, with ``--json``, one JSON document on stdout for scripts; progress bars
go to stderr. Exit codes: 0 success, 1 a package failed validation, a version failed to load or replicas did not
converge, 2 bad usage or a package that cannot be read or published (corrupt, checksum mismatch, existing version,
unsafe name), or a cluster that cannot be reached.

The rollout commands change the cluster's desired state (:mod:`gateway.rollout_control`) in the Hazelcast cluster
``--members``; every gateway replica on it converges and reports. With ``--wait SECONDS`` the command waits until
``--replicas`` replicas report the new revision.
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


class ClusterError(Exception):
    """The Hazelcast cluster could not be reached."""


DEFAULT_STORE = Path("build/store")
COMMANDS = ("publish", "validate", "list", "status", "deploy", "promote", "rollback")


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
    status.add_argument(
        "--members", help="report the cluster's desired and actual rollout states instead (HOST:PORT,...)"
    )
    status.add_argument("--cluster", default="dev", help="Hazelcast cluster name (%(default)s)")
    common(status)

    def cluster(p: argparse.ArgumentParser) -> None:
        p.add_argument("--members", required=True, help="Hazelcast members, HOST:PORT[,HOST:PORT...]")
        p.add_argument("--cluster", default="dev", help="Hazelcast cluster name (%(default)s)")
        p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait for replicas to converge")
        p.add_argument("--replicas", type=int, default=1, help="replicas --wait expects to report (%(default)s)")
        common(p)

    deploy = sub.add_parser(
        "deploy",
        help="start a canary or shadow rollout of a published version across the cluster",
        description="Make name@version the candidate beside the live version in the cluster's desired state. "
        "--canary PCT sends PCT% of keyed requests to it (sticky per key); --shadow mirrors live traffic to it off "
        "the response path. Either way the replicas compare it with live and roll it back by themselves when its "
        "regression gate fails. The version must be published (and validated) in --store.",
    )
    deploy.add_argument("ref", metavar="NAME@VERSION", help="the candidate version")
    deploy.add_argument("--canary", type=float, default=0.0, metavar="PCT", help="percent of keyed traffic (0-100)")
    deploy.add_argument("--shadow", action="store_true", help="mirror live traffic to the candidate")
    deploy.add_argument(
        "--shadow-sample", type=float, default=0.1, help="share of live traffic mirrored, (0-1] (%(default)s)"
    )
    cluster(deploy)

    promote = sub.add_parser(
        "promote",
        help="make the running candidate of a model live everywhere",
        description="The candidate becomes the live version on every replica; the old live version drains, then "
        "unloads.",
    )
    promote.add_argument("name", help="model name")
    cluster(promote)

    rollback = sub.add_parser(
        "rollback",
        help="take the running candidate of a model out of traffic everywhere",
        description="The candidate leaves (it drains, then unloads); the live version serves every request. With "
        "--to VERSION, make that published version live instead.",
    )
    rollback.add_argument("name", help="model name")
    rollback.add_argument("--to", metavar="VERSION", help="make this version live (e.g. the previous one)")
    cluster(rollback)


def run_command(args: argparse.Namespace) -> int:
    if args.command not in COMMANDS:
        raise ValueError(f"not a model command: {args.command!r}")
    handlers = {"publish": _publish, "validate": _validate, "list": _list, "deploy": _rollout}
    handlers |= {"promote": _rollout, "rollback": _rollout}
    handler = handlers.get(args.command) or (_cluster_status if args.members else _status)
    try:
        return handler(args)
    except (PackageError, UnsafeNameError, KeyError, ValueError, ClusterError) as exc:
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


def _connect(args: argparse.Namespace) -> Any:
    from hazelcast.client import HazelcastClient

    try:
        return HazelcastClient(
            cluster_name=args.cluster,
            cluster_members=[m.strip() for m in args.members.split(",") if m.strip()],
            cluster_connect_timeout=10.0,
            statistics_enabled=False,
        )
    except Exception as exc:  # the client raises IllegalStateError after its connect timeout
        raise ClusterError(f"cannot reach Hazelcast cluster {args.cluster!r} at {args.members}: {exc}") from None


def _rollout(args: argparse.Namespace) -> int:
    from gateway.rollout_control import change_desired, wait_converged
    from models.ids import check_name, check_version
    from models.rollout import RolloutState

    store = ArtifactStore(args.store)
    if args.command == "deploy":
        name, version = parse_ref(args.ref)
        if version is None:
            raise KeyError(f"deploy needs NAME@VERSION, got {args.ref!r}")
        check_name(name)
        check_version(version)
        _require_published(store, name, version)
        others = [v for v in store.versions(name) if v != version]

        def change(current: RolloutState | None) -> RolloutState:
            if current is None and not others:
                raise KeyError(f"{name} has no other published version to serve as live beside {version}")
            live = current.live if current is not None else others[-1]
            return RolloutState(name, live, version, args.canary, args.shadow, args.shadow_sample)

    elif args.command == "promote":
        name = check_name(args.name)

        def change(current: RolloutState | None) -> RolloutState:
            if current is None or not current.candidate:
                raise KeyError(f"{name} has no running candidate to promote")
            return current.promoted()

    else:
        name = check_name(args.name)
        target = None if args.to is None else check_version(args.to)
        if target is not None:
            _require_published(store, name, target)

        def change(current: RolloutState | None) -> RolloutState:
            if target is not None:
                return RolloutState(name, target)
            if current is None or not current.candidate:
                raise KeyError(f"{name} has no running candidate to roll back (use --to VERSION)")
            return current.rolled_back()

    client = _connect(args)
    try:
        state = change_desired(client, name, change)
        reports = wait_converged(client, name, state.revision, args.replicas, args.wait) if args.wait > 0 else []
    finally:
        client.shutdown()
    failed = [r for r in reports if not r.ok]
    converged = args.wait <= 0 or (len(reports) >= args.replicas and not failed)
    if args.json:
        doc = {
            "desired": json.loads(state.to_json()),
            "replicas": [json.loads(r.to_json()) for r in reports],
            "converged": converged if args.wait > 0 else None,
        }
        print(json.dumps(doc, indent=2))
    else:
        what = f"{name}: live {state.live}"
        if state.candidate:
            mode = f"canary {state.canary_pct:g}%" if state.canary_pct else ""
            mode += (" + " if mode else "") + "shadow" if state.shadow else ""
            what += f", candidate {state.candidate} ({mode or 'loaded, no traffic'})"
        print(f"desired revision {state.revision}: {what}")
        for r in reports:
            print(f"  {r.replica:<16} revision {r.revision:<4} {'ok' if r.ok else 'FAILED'} {r.error}")
        if args.wait > 0 and not converged:
            print(
                f"not converged: {len(reports) - len(failed)}/{args.replicas} replicas serve revision {state.revision}"
            )
    return 0 if converged else 1


def _require_published(store: ArtifactStore, name: str, version: str) -> None:
    if version not in store.versions(name):
        raise KeyError(f"{name}@{version} is not published in {store.root}")
    saved = store.report(name, version)
    if saved is None or json.loads(saved).get("passed") is not True:
        raise KeyError(f"{name}@{version} has no passing validation report: replicas would refuse it")


def _cluster_status(args: argparse.Namespace) -> int:
    from gateway.rollout_control import DESIRED_MAP, read_reports
    from models.rollout import RolloutState

    client = _connect(args)
    try:
        desired = {k: RolloutState.from_json(v) for k, v in client.get_map(DESIRED_MAP).blocking().entry_set()}
        reports = read_reports(client)
    finally:
        client.shutdown()
    behind = [r for r in reports if r.name in desired and (r.revision < desired[r.name].revision or not r.ok)]
    if args.json:
        doc = {
            "desired": {k: json.loads(v.to_json()) for k, v in sorted(desired.items())},
            "replicas": [json.loads(r.to_json()) for r in reports],
        }
        print(json.dumps(doc, indent=2))
    else:
        for name, state in sorted(desired.items()):
            print(
                f"{name}: revision {state.revision} live {state.live} candidate {state.candidate or '-'} "
                f"canary {state.canary_pct:g}% shadow {'on' if state.shadow else 'off'}"
            )
            for r in (r for r in reports if r.name == name):
                print(
                    f"  {r.replica:<16} revision {r.revision:<4} live {r.live} candidate {r.candidate or '-'} "
                    f"{'ok' if r.ok else 'FAILED ' + r.error}"
                )
    return 1 if behind else 0
