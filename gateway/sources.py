"""Where a server's models come from: a model directory, or the artifact store, optionally as one replica of a cluster.

The servers (``serve``, ``serve-grpc``, ``serve-py4j``) take the same options:

* ``--models DIR``: every ``<name>/<version>/model.onnx`` under ``DIR``, as they are (development, demos).
* ``--store DIR``: the artifact store's published models (``scoregate publish``): the latest version of each, and only
  versions with a passing validation report unless ``--no-validate``. Versions load and swap without a restart.
* ``--store DIR --cluster NAME --members HOST:PORT,...``: the same, and the server is a replica of the cluster's
  control plane (:mod:`gateway.rollout_control`): it converges on the desired rollout state in Hazelcast before it
  starts serving, then follows every change (``scoregate deploy / promote / rollback``), reports what it serves
  under ``--replica`` (default ``<host>-<pid>``), and rolls a candidate back everywhere when its own gate fails it.

:func:`open_engine` is the one place that builds the engine and the lifecycle around it, for every transport.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI builds its parser from this module: no ONNX Runtime import for --help
    from gateway.engine import Engine
    from gateway.rollout_control import Rotation

__all__ = ["ModelSource", "add_source_arguments", "open_engine", "source_from"]


@dataclass(frozen=True)
class ModelSource:
    """What :func:`open_engine` serves. Exactly one of ``models`` and ``store``; a cluster needs a store."""

    models: Path | None = None
    store: Path | None = None
    #: Hazelcast cluster name and members: join the rollout control plane as replica ``replica``.
    cluster: str | None = None
    members: tuple[str, ...] = ()
    replica: str = ""
    #: Serve only versions with a passing validation report (store only).
    validate: bool = True
    #: Seconds between the control plane's full re-reads of the desired state.
    resync_s: float = 1.0

    def __post_init__(self) -> None:
        if (self.models is None) == (self.store is None):
            raise ValueError("give a model directory (--models) or an artifact store (--store), not both")
        if self.cluster is not None and self.store is None:
            raise ValueError("--cluster serves the artifact store's versions: give --store too")
        if (self.cluster is None) != (not self.members):
            raise ValueError("--cluster and --members go together")

    @property
    def replica_name(self) -> str:
        return self.replica or f"{socket.gethostname()}-{os.getpid()}"

    def describe(self) -> str:
        """For start-up lines: where the models come from."""
        if self.models is not None:
            return f"models from {self.models}"
        where = f"store {self.store}"
        return where if self.cluster is None else f"{where}, replica {self.replica_name} of cluster {self.cluster}"


def add_source_arguments(parser: argparse.ArgumentParser, default_models: Path | None) -> None:
    """The servers' model-source options (module docstring); read them back with :func:`source_from`."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--models",
        type=Path,
        help="model directory, <name>/<version>/model.onnx"
        + (f" (default {default_models})" if default_models else ""),
    )
    where.add_argument("--store", type=Path, help="serve the artifact store's published, validated versions instead")
    parser.add_argument(
        "--cluster", metavar="NAME", help="with --store: be a replica of this Hazelcast cluster's rollout control plane"
    )
    parser.add_argument("--members", metavar="HOST:PORT,...", help="Hazelcast members of --cluster")
    parser.add_argument("--replica", default="", help="this replica's name in the cluster's reports (<host>-<pid>)")
    parser.add_argument("--no-validate", action="store_true", help="with --store: serve versions without a report")
    parser.set_defaults(default_models=default_models)


def source_from(args: argparse.Namespace) -> ModelSource:
    """The :class:`ModelSource` the parsed options name; ``ValueError`` for a combination that makes no sense."""
    models = args.models
    if models is None and args.store is None:
        models = args.default_models
        if models is None:
            raise ValueError("give a model directory (--models) or an artifact store (--store)")
    members = tuple(m for m in (args.members or "").split(",") if m)
    return ModelSource(
        models=models,
        store=args.store,
        cluster=args.cluster,
        members=members,
        replica=args.replica,
        validate=not args.no_validate,
    )


@contextlib.contextmanager
def open_engine(source: ModelSource, *, timeout_s: float = 120.0, rotation: Rotation | None = None) -> Iterator[Engine]:
    """The engine ``source`` names, loaded, with its lifecycle running; closed (control plane first) on exit.

    With a cluster, the replica has applied the desired state of every model before this yields, so the server
    starts serving what the cluster wants (a version rolled back there does not serve here, even for a moment).
    ``rotation``: how the replica leaves its clients' rotation to load (the server attaches itself once it serves).
    """
    from gateway.engine import Engine

    if rotation is not None and source.cluster is None:
        raise ValueError("leaving the rotation to load is for cluster replicas: give --cluster")

    with contextlib.ExitStack() as stack:  # closes in reverse: control plane, controller, client, engine
        if source.models is not None:
            engine = Engine.from_directory(source.models)
        else:
            assert source.store is not None
            engine = Engine.from_store(source.store, require_validation=source.validate, timeout=timeout_s)
        stack.callback(engine.close)
        if source.cluster is not None:
            from cache.client import connect
            from gateway.rollout import RolloutController
            from gateway.rollout_control import ControlPlane

            client = connect(source.cluster, source.members)
            stack.callback(_shutdown_quietly, client)
            controller = RolloutController(engine)
            stack.callback(controller.close)
            plane = ControlPlane(
                client, controller, source.replica_name, resync_s=source.resync_s, rotation=rotation
            ).start()
            stack.callback(plane.close)
        yield engine


def _shutdown_quietly(client: Any) -> None:
    with contextlib.suppress(Exception):  # the cluster may already be gone
        client.shutdown()
