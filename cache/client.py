"""Connecting the Python Hazelcast client to the feature cache, with keys the Java side can read.

Keys are entity ids serialized as Java ``Long``. The Python client serializes an ``int`` as a
Java ``Integer`` by default (``IntType.INT``), which a ``Long`` lookup on the JVM side never finds
(and vice versa): the same number, two different keys. Every client that writes or reads feature
maps is therefore created with ``default_int_type=LONG`` (:func:`connect`), and
:func:`require_long_keys` refuses a client configured otherwise.

The Python client's near cache breaks ``get_all`` (hazelcast-python-client#701), so :func:`connect`
configures none; the Java reader (``dev.scoregate.bridge.features``) is the path with a near cache.
TLS and credentials are passed through as client options (``ssl_*``, ``creds_*``); Hazelcast's
open-source member does not support either (they are Enterprise features).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["KEY_INT_TYPE", "connect", "require_long_keys"]

#: How feature-map keys are serialized: Java ``Long`` (Hazelcast type id -7).
KEY_INT_TYPE = "LONG"


def connect(cluster_name: str, addresses: Sequence[str], **options: Any) -> Any:
    """A ``hazelcast.HazelcastClient`` for the feature maps. ``options`` go to the client as they are."""
    from hazelcast.client import HazelcastClient

    settings: dict[str, Any] = {"statistics_enabled": False, "cluster_connect_timeout": 30.0, **options}
    settings["default_int_type"] = KEY_INT_TYPE
    return HazelcastClient(cluster_name=cluster_name, cluster_members=list(addresses), **settings)


def require_long_keys(client: Any) -> None:
    """Raise ``ValueError`` unless ``client`` serializes ``int`` keys as Java ``Long``.

    The client keeps its configuration private; when it cannot be inspected (another client type)
    nothing is checked.
    """
    from hazelcast.config import IntType

    config = getattr(client, "_config", None)
    int_type = getattr(config, "default_int_type", None)
    if int_type is not None and int_type != IntType.LONG:
        raise ValueError(
            "this Hazelcast client writes int keys as Java Integer; feature maps are keyed by Long: "
            "create it with cache.client.connect() or default_int_type='LONG'"
        )
