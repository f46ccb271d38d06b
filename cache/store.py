"""Writing feature values into the cluster: batch loads and event-time-ordered streaming updates.

* :meth:`FeatureWriter.put_many` loads many entities of one group with ``put_all`` in chunks
  (one round trip per chunk per partition owner), with a progress bar when asked.
* :meth:`FeatureWriter.update` applies one streaming event with compare-and-set on the stored
  value, so that an event older than the stored one never overwrites it, whatever order events
  arrive in and however many writers race (``replace_if_same`` retried on conflict).

Keys are the entity's integer id, serialized as a Java ``Long`` (:mod:`cache.client`). Values are
:mod:`cache.codec` vectors, validated at write time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.client import require_long_keys
from cache.codec import HEADER_BYTES, encode
from cache.registry import FeatureRegistry

__all__ = ["FeatureWriter"]


def _event_ms(value: bytes | bytearray) -> int:
    return int(np.frombuffer(value, dtype="<i8", count=1, offset=8)[0])


class FeatureWriter:
    """Writes feature groups through a Hazelcast client (``hazelcast.HazelcastClient``)."""

    def __init__(self, client: Any, registry: FeatureRegistry) -> None:
        require_long_keys(client)
        self._client = client
        self._registry = registry

    @property
    def registry(self) -> FeatureRegistry:
        return self._registry

    @property
    def client(self) -> Any:
        """The Hazelcast client it writes through."""
        return self._client

    def put_many(
        self,
        group_name: str,
        ids: npt.ArrayLike,
        values: npt.NDArray[np.floating[Any]],
        event_ms: int | npt.ArrayLike,
        *,
        chunk: int = 2000,
        progress: bool = False,
    ) -> int:
        """Store ``values[i]`` for entity ``ids[i]``; every row is validated first (nothing is written on error)."""
        group = self._registry.group(group_name)
        keys = np.asarray(ids, dtype=np.int64)
        times = np.broadcast_to(np.asarray(event_ms, dtype=np.int64), keys.shape)
        if values.ndim != 2 or values.shape[0] != keys.shape[0]:
            raise ValueError(f"group {group_name!r}: values must be [len(ids), {group.width}], got {values.shape}")
        encoded = [encode(group, values[i], int(times[i])) for i in range(keys.shape[0])]
        target = self._client.get_map(group.map_name).blocking()
        bar: Callable[[int], object] = lambda n: None  # noqa: E731 - a no-op progress sink
        closer: Callable[[], object] = lambda: None  # noqa: E731
        if progress:
            from tqdm import tqdm

            pbar = tqdm(total=len(encoded), desc=f"load {group_name}", unit="entity")
            bar, closer = pbar.update, pbar.close
        try:
            for start in range(0, len(encoded), chunk):
                stop = min(start + chunk, len(encoded))
                target.put_all({int(keys[i]): encoded[i] for i in range(start, stop)})
                bar(stop - start)
        finally:
            closer()
        return len(encoded)

    def update(
        self, group_name: str, entity_id: int, values: npt.ArrayLike, event_ms: int, max_retries: int = 16
    ) -> bool:
        """Apply one streaming event. Returns False when the stored value is as new or newer (event dropped)."""
        group = self._registry.group(group_name)
        new = encode(group, np.asarray(values), event_ms)
        target = self._client.get_map(group.map_name).blocking()
        for _ in range(max_retries):
            old = target.get(int(entity_id))
            if old is None:
                if target.put_if_absent(int(entity_id), new) is None:
                    return True
                continue  # someone wrote first: compare with theirs
            if len(old) < HEADER_BYTES or _event_ms(old) >= event_ms:
                return False
            if target.replace_if_same(int(entity_id), old, new):
                return True
        raise RuntimeError(f"group {group_name!r} entity {entity_id}: {max_retries} conflicting writers in a row")
