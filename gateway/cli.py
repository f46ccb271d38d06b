"""``python -m gateway`` (also installed as ``scoregate``): the gateway's command line.

Commands::

    demo      load the demo models and drive ad-request traffic, printing live figures
    serve     host a Java program in process (JPype): it scores through ModelGateways.get()
    serve-py4j  serve ad-server JVMs out of process: Py4J control, tensors in shared memory
    serve-grpc  serve the models over gRPC (KServe V2 / Open Inference Protocol) to non-JVM clients
    models    list the models in a directory with their signatures
    monitor report  render a monitoring snapshot: text, --json, --plots DIR (latency, drift, reliability PNGs)
    features consistency  compare a served-feature log with values recomputed as of each request's time
    publish   validate model packages and publish them to the artifact store
    validate  run the validation gates on a package or a published version
    list      list published models, versions and validation verdicts
    status    load the store's latest versions and report each version's state

This module is where the gateway is assembled from its transports, so it alone imports
``jvm_bridge`` (lazily, inside the command that needs it); the scoring core never does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.sources import ModelSource, add_source_arguments, open_engine, source_from

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

    serve = sub.add_parser(
        "serve",
        help="start a JVM in this process, serve the models to it, and run a Java main class",
        description="Start a JVM in this process (JPype), load the models, register the gateway so that Java code "
        "obtains it with ModelGateways.get(), then run the Java main class with the remaining arguments. "
        "Exits with the Java program.",
    )
    serve.add_argument("--jvm-main", required=True, metavar="CLASS", help="fully qualified Java main class")
    serve.add_argument("--classpath", default="", help="extra classpath entries, separated by ':'")
    add_source_arguments(serve, DEFAULT_DEMO_DIR / "models")
    serve.add_argument("--workers", type=int, default=2, help="Python scoring threads (default %(default)s)")
    serve.add_argument("--max-delay-us", type=float, default=0.0, help="batching delay (default %(default)s: none)")
    serve.add_argument(
        "--gather-us",
        type=float,
        default=100.0,
        help="batches that score in less than this keep to the worker already scoring instead of waking another "
        "(the workers share one GIL; default %(default)s; 0: never)",
    )
    serve.add_argument(
        "--spare-models",
        type=int,
        default=32,
        help="model names that may be deployed after start and served to Java without a restart (default "
        "%(default)s; a new name must be no wider than the widest model at start)",
    )
    serve.add_argument("--jvm-arg", action="append", default=[], help="JVM option, repeatable (e.g. -Xmx2g)")
    add_metrics_port_argument(serve, "127.0.0.1")
    serve.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the Java main class (after --)")

    py4j = sub.add_parser(
        "serve-py4j",
        help="serve ad-server JVMs in other processes: Py4J for control, shared memory for tensors",
        description="Load the models and listen for ad-server JVMs, which connect with "
        "ModelGateways.connect(host, port, options) (jar: scoregate-py4j-client). Py4J carries control only; every "
        "request's tensors travel through a shared-memory ring under /dev/shm. Runs until SIGTERM or Ctrl-C.",
    )
    add_source_arguments(py4j, DEFAULT_DEMO_DIR / "models")
    py4j.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    py4j.add_argument("--port", type=int, default=25334, help="Py4J port; 0 picks a free one (default %(default)s)")
    py4j.add_argument("--workers", type=int, default=2, help="scoring threads per client JVM (default %(default)s)")
    add_metrics_port_argument(py4j)

    grpc = sub.add_parser(
        "serve-grpc",
        help="serve the models over gRPC: the KServe V2 / Open Inference Protocol (tritonclient works)",
        description="Load the models and serve them over gRPC with the KServe V2 / Open Inference Protocol "
        "(inference.GRPCInferenceService: ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata, "
        "ModelInfer), plus standard health checking and server reflection. Beyond --max-in-flight concurrent "
        "calls the server answers RESOURCE_EXHAUSTED at once. Runs until SIGTERM or Ctrl-C.",
    )
    add_source_arguments(grpc, DEFAULT_DEMO_DIR / "models")
    grpc.add_argument("--host", default="127.0.0.1", help="listen address (default %(default)s)")
    grpc.add_argument("--port", type=int, default=8001, help="gRPC port; 0 picks a free one (default %(default)s)")
    grpc.add_argument("--workers", type=int, default=4, help="server threads (default %(default)s)")
    add_metrics_port_argument(grpc)
    grpc.add_argument(
        "--max-in-flight", type=int, default=64, help="calls admitted at once, running or queued (default %(default)s)"
    )
    grpc.add_argument(
        "--max-message-mb", type=float, default=64.0, help="largest request or response, MiB (default %(default)s)"
    )
    grpc.add_argument("--tls-cert", type=Path, help="PEM server certificate chain (with --tls-key: TLS on)")
    grpc.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    grpc.add_argument(
        "--token",
        help="require metadata 'authorization: Bearer TOKEN' on every call but health checks "
        "(default: no authentication; prefer --token-file, since a command line is visible to other users)",
    )
    grpc.add_argument("--token-file", type=Path, help="read the bearer token from this file (whitespace stripped)")
    grpc.add_argument(
        "--rotate-out-s",
        type=float,
        metavar="DRAIN_S",
        help="with --cluster: before loading a version, leave the clients' rotation (health NOT_SERVING, ServerReady "
        "false; calls are still answered), wait DRAIN_S seconds for clients to move to other replicas, load, and "
        "come back; one replica of the cluster at a time (default: load while serving)",
    )
    grpc.add_argument(
        "--pipeline",
        type=Path,
        nargs="?",
        const=DEFAULT_DEMO_DIR,
        metavar="DEMO_DIR",
        help="also serve scoregate.v1.AdDecisionService: whole ad requests through the demo pipeline of DEMO_DIR "
        "(default %(const)s; --models should then be DEMO_DIR/models)",
    )

    models = sub.add_parser("models", help="list the models in a directory and their signatures")
    models.add_argument(
        "directory", type=Path, nargs="?", default=DEFAULT_DEMO_DIR / "models", help="default %(default)s"
    )
    from gateway.model_commands import add_commands

    add_commands(sub)

    monitor = sub.add_parser("monitor", help="production monitoring: reports of latency, drift and calibration")
    monitor_sub = monitor.add_subparsers(dest="monitor_command", required=True, metavar="SUBCOMMAND")
    report = monitor_sub.add_parser(
        "report",
        help="render a monitor snapshot (written by Monitor.write_snapshot or 'python -m perf run monitoring')",
    )
    report.add_argument("snapshot", type=Path, help="snapshot JSON file")
    report.add_argument("--json", action="store_true", help="print the snapshot as JSON instead of text")
    report.add_argument("--plots", type=Path, metavar="DIR", help="write latency.png, drift.png, reliability.png")

    features = sub.add_parser("features", help="the feature cache: online/offline consistency")
    features_sub = features.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")
    from cache.consistency import add_arguments as add_consistency_arguments

    add_consistency_arguments(
        features_sub.add_parser(
            "consistency", help="compare a served-feature log with the values recomputed as of each request's time"
        )
    )
    return p


def _monitor(args: argparse.Namespace) -> int:
    import json

    from gateway.monitoring.report import SNAPSHOT_FORMAT, plot_all, render_text

    try:
        snap = json.loads(args.snapshot.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"cannot read snapshot {args.snapshot}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(snap, dict) or snap.get("format") != SNAPSHOT_FORMAT:
        print(f"{args.snapshot} is not a monitor snapshot ({SNAPSHOT_FORMAT})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(snap, indent=1))
    else:
        print(render_text(snap), end="")
    if args.plots:
        for path in plot_all(snap, args.plots):
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def add_metrics_port_argument(parser: argparse.ArgumentParser, host: str = "HOST") -> None:
    """The servers' ``--metrics-port`` option (``args.metrics_port``: ``None`` when off)."""
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=f"also serve Prometheus metrics at http://{host}:PORT/metrics: per model and version, calls, rows, "
        "errors, latency and batch-size histograms (Triton's is 8002; 0 picks a free port; default: off)",
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from gateway.demo import DemoOptions, run_demo

        if not (args.demo_dir / "models").is_dir():
            print(f"no demo models under {args.demo_dir}/models; build them with 'make setup'", file=sys.stderr)
            return 2
        summary = run_demo(DemoOptions(args.demo_dir, args.duration, args.threads, args.candidates))
        return 1 if summary.requests == 0 else 0
    if args.command in ("serve", "serve-grpc", "serve-py4j"):
        return _server(args)
    if args.command == "models":
        from gateway.engine import Engine

        engine = Engine.from_directory(args.directory)
        for name in engine.names():
            print(repr(engine.runtime(name)))
        return 0
    from gateway.model_commands import run_command  # publish, validate, list, status

    return {"monitor": _monitor, "features": _features}.get(args.command, run_command)(args)


def _features(args: argparse.Namespace) -> int:
    from cache.consistency import run

    return int(run(args))


def _server(args: argparse.Namespace) -> int:
    """``serve``, ``serve-grpc`` or ``serve-py4j``, over the model source its options name."""
    try:
        source = source_from(args)
    except ValueError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, source)
    if args.command == "serve-grpc":
        return _serve_grpc(args, source)
    from jvm_bridge.py4j_server import Py4jServerOptions, serve

    options = Py4jServerOptions(host=args.host, port=args.port, workers=args.workers)
    return serve(source, options, metrics_port=args.metrics_port)


def _serve(args: argparse.Namespace, source: ModelSource) -> int:
    from gateway.heap import freeze_startup_heap
    from gateway.monitoring.endpoint import metrics_endpoint
    from jvm_bridge.inprocess import InProcessHost, InProcessOptions
    from jvm_bridge.jvm import start_jvm

    with open_engine(source) as engine:
        start_jvm([p for p in args.classpath.split(":") if p], args.jvm_arg)
        java_args = args.args[1:] if args.args[:1] == ["--"] else args.args
        options = InProcessOptions(
            workers=args.workers,
            max_delay_us=args.max_delay_us,
            gather_us=args.gather_us,
            spare_models=args.spare_models,
        )
        with (
            InProcessHost(engine, options) as host,
            metrics_endpoint(engine, "127.0.0.1", args.metrics_port) as metrics,
        ):
            if metrics is not None:  # on stderr: stdout is the Java program's
                print(f"scoregate metrics on {metrics.url}", file=sys.stderr, flush=True)
            freeze_startup_heap()
            host.run_main(args.jvm_main, java_args)
    return 0


def _serve_grpc(args: argparse.Namespace, source: ModelSource) -> int:
    from gateway.grpc import GrpcServerOptions, serve

    token = args.token
    if args.token_file is not None:
        token = args.token_file.read_text(encoding="utf-8").strip()
    try:
        options = GrpcServerOptions(
            host=args.host,
            port=args.port,
            workers=args.workers,
            max_in_flight=args.max_in_flight,
            max_message_bytes=int(args.max_message_mb * 1024 * 1024),
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            token=token,
        )
    except ValueError as exc:
        print(f"serve-grpc: {exc}", file=sys.stderr)
        return 2
    if args.rotate_out_s is not None and (args.rotate_out_s < 0 or source.cluster is None):
        print("serve-grpc: --rotate-out-s needs --cluster and a drain of 0 s or more", file=sys.stderr)
        return 2
    return serve(
        source, options, pipeline_demo=args.pipeline, metrics_port=args.metrics_port, rotate_out_s=args.rotate_out_s
    )


if __name__ == "__main__":
    sys.exit(main())
