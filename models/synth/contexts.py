"""Request contexts: where and when an ad would show (device, hour, genre, CTV ad-break slot).

A context is a placement (the context entity of :class:`~models.synth.world.World`) seen at a time: the user's local
hour and weekday, and for CTV the slot of the ad break (pod) being filled. :class:`ContextBatch` holds many contexts
as parallel arrays (the form every vectorised function takes); :class:`Context` is one row of it, for a request.

Context features (:data:`~models.synth.schema.CONTEXT_FEATURES`, 16 columns):

* ``device_*`` one-hot, ``hour_sin``/``hour_cos`` of the local hour, ``weekend`` (0/1), ``genre_*`` one-hot,
* ``page_quality`` (the placement's, standard normal), ``is_pod`` (0/1), ``pod_len`` (seconds / 120),
* ``slot_pos`` (0 for the first slot of a pod, 1 for the last, 0 outside pods), ``slot_is_first`` (0/1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.synth import schema
from models.synth.world import World

REGION_UTC_OFFSET_H = np.array([-5, 1, 8, -3], dtype=np.int64)
"""Local-time offset of each region (schema.REGIONS order); contexts carry the user's local hour."""

SLOT_SECONDS = 30.0
"""A pod has one slot per 30 s of break."""

_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


@dataclass(frozen=True)
class Context:
    """One request context (codes index the vocabularies of :mod:`models.synth.schema`)."""

    placement_id: int
    device: int
    genre: int
    hour: int
    weekend: bool
    page_quality: float
    pod_len_s: float
    n_slots: int
    slot_pos: int

    @property
    def device_name(self) -> str:
        return schema.DEVICES[self.device]

    @property
    def genre_name(self) -> str:
        return schema.GENRES[self.genre]

    @property
    def is_pod(self) -> bool:
        return self.n_slots > 0

    def batch(self) -> ContextBatch:
        """This context as a batch of one."""
        return ContextBatch(
            placement_id=np.array([self.placement_id], dtype=np.int32),
            device=np.array([self.device], dtype=np.int8),
            genre=np.array([self.genre], dtype=np.int8),
            hour=np.array([self.hour], dtype=np.int8),
            weekend=np.array([self.weekend], dtype=np.bool_),
            page_quality=np.array([self.page_quality], dtype=np.float32),
            pod_len_s=np.array([self.pod_len_s], dtype=np.float32),
            n_slots=np.array([self.n_slots], dtype=np.int8),
            slot_pos=np.array([self.slot_pos], dtype=np.int8),
        )

    def features(self) -> npt.NDArray[np.float32]:
        """The 16 context features of this context, float32 [16]."""
        row: npt.NDArray[np.float32] = self.batch().features()[0]
        return row


@dataclass(frozen=True, eq=False)
class ContextBatch:
    """M contexts as parallel arrays of length M (see :class:`Context` for the fields)."""

    placement_id: npt.NDArray[np.int32]
    device: npt.NDArray[np.int8]
    genre: npt.NDArray[np.int8]
    hour: npt.NDArray[np.int8]
    weekend: npt.NDArray[np.bool_]
    page_quality: npt.NDArray[np.float32]
    pod_len_s: npt.NDArray[np.float32]
    n_slots: npt.NDArray[np.int8]
    slot_pos: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return int(self.placement_id.shape[0])

    def row(self, i: int) -> Context:
        return Context(
            placement_id=int(self.placement_id[i]),
            device=int(self.device[i]),
            genre=int(self.genre[i]),
            hour=int(self.hour[i]),
            weekend=bool(self.weekend[i]),
            page_quality=float(self.page_quality[i]),
            pod_len_s=float(self.pod_len_s[i]),
            n_slots=int(self.n_slots[i]),
            slot_pos=int(self.slot_pos[i]),
        )

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ContextBatch:
        """The rows selected by an integer or boolean index (copies)."""
        return ContextBatch(
            placement_id=self.placement_id[index],
            device=self.device[index],
            genre=self.genre[index],
            hour=self.hour[index],
            weekend=self.weekend[index],
            page_quality=self.page_quality[index],
            pod_len_s=self.pod_len_s[index],
            n_slots=self.n_slots[index],
            slot_pos=self.slot_pos[index],
        )

    def features(self, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        """The context feature block, float32 [M, 16] (written into ``out`` when given, which is returned)."""
        m = len(self)
        if out is None:
            out = np.empty((m, schema.N_CONTEXT_FEATURES), dtype=np.float32)
        elif out.shape != (m, schema.N_CONTEXT_FEATURES) or out.dtype != np.float32:
            raise ValueError(f"out must be float32 [{m}, {schema.N_CONTEXT_FEATURES}], got {out.dtype} {out.shape}")
        n_dev, n_gen = len(schema.DEVICES), len(schema.GENRES)
        out[:, 0:n_dev] = self.device[:, None] == np.arange(n_dev)
        # Rounded so that hours with equal sines give bit-equal float32 values: a tree threshold between two
        # adjacent float32 values cannot survive the float32 rounding of ONNX tree ensembles.
        angle = self.hour.astype(np.float64) * (2.0 * np.pi / 24.0)
        out[:, n_dev] = np.round(np.sin(angle), 6)
        out[:, n_dev + 1] = np.round(np.cos(angle), 6)
        out[:, n_dev + 2] = self.weekend
        g = n_dev + 3
        out[:, g : g + n_gen] = self.genre[:, None] == np.arange(n_gen)
        p = g + n_gen
        is_pod = self.n_slots > 0
        out[:, p] = self.page_quality
        out[:, p + 1] = is_pod
        out[:, p + 2] = self.pod_len_s / np.float32(120.0)
        out[:, p + 3] = self.slot_pos / np.maximum(self.n_slots.astype(np.float32) - 1.0, 1.0)
        out[:, p + 4] = is_pod & (self.slot_pos == 0)
        return out


def local_time(
    world: World, user_ids: npt.NDArray[np.integer], epoch_s: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.bool_]]:
    """The users' local hour (0-23) and weekend flag at UTC epoch seconds ``epoch_s``."""
    local = epoch_s + REGION_UTC_OFFSET_H[world.user_region[user_ids]] * 3600
    hour = (local // 3600) % 24
    weekday = (local // 86_400 + _EPOCH_WEEKDAY) % 7
    return hour.astype(np.int8), weekday >= 5


def sample_contexts(
    world: World,
    user_ids: npt.NDArray[np.integer],
    epoch_s: npt.NDArray[np.int64],
    rng: np.random.Generator,
    device: npt.NDArray[np.int8] | None = None,
) -> ContextBatch:
    """Draw one context per (user, time): device from the user's device mix (unless ``device`` is given), a
    placement of that device uniformly, and a uniform slot of the pod for CTV placements."""
    m = int(user_ids.shape[0])
    if device is None:
        cum = np.cumsum(world.user_device_mix[user_ids], axis=1)
        u = rng.random(m, dtype=np.float32)[:, None] * cum[:, -1:]
        device = np.minimum((u >= cum).sum(axis=1), len(schema.DEVICES) - 1).astype(np.int8)
    placement = np.empty(m, dtype=np.int32)
    draws = rng.random(m)
    for code in range(len(schema.DEVICES)):
        pool = world.placements_of_device(code)
        rows = device == code
        placement[rows] = pool[(draws[rows] * pool.shape[0]).astype(np.int64)]
    pod_len = world.placement_pod_len_s[placement]
    n_slots = (pod_len / SLOT_SECONDS).astype(np.int8)
    slot_pos = (rng.random(m) * n_slots).astype(np.int8)
    hour, weekend = local_time(world, user_ids, epoch_s)
    return ContextBatch(
        placement_id=placement,
        device=world.placement_device[placement],
        genre=world.placement_genre[placement],
        hour=hour,
        weekend=weekend,
        page_quality=world.placement_quality[placement],
        pod_len_s=pod_len,
        n_slots=n_slots,
        slot_pos=slot_pos,
    )
