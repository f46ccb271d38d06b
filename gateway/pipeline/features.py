"""Where the pipeline's features come from: a ``FeatureSource`` fills candidate feature matrices in place.

:class:`ExportFeatures` serves the marketplace export (``python -m models.demo build`` writes it under
``build/demo/export``: the same arrays the reference Java ad server reads): user, ad and context feature blocks as
little-endian float32 matrices, plus the ad attributes the auction needs (bid, objective, category, advertiser,
creative length) and each context's device and ad-break shape. The Hazelcast feature cache is the production
source behind the same protocol.

Gathers are whole-array numpy operations over candidate ids: no per-row or per-feature Python objects.

Thread-safety: read-only after construction; any number of threads may gather at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["AdAttributes", "ColumnPlan", "ContextInfo", "ExportFeatures", "FeatureSource"]

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

_BLOCKS = ("user", "ad", "context")


@dataclass(frozen=True)
class ColumnPlan:
    """How one model's input columns come from the three blocks: ``dst`` positions in the model's input and ``src``
    columns in the block, per block. ``identity`` when the model reads every column in schema order."""

    width: int
    parts: Mapping[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]
    identity: bool


@dataclass(frozen=True)
class AdAttributes:
    """Per-ad attributes, indexed by ad id."""

    bid: F32
    objective: I32
    category: I32
    advertiser: I32
    creative_len_s: F32


@dataclass(frozen=True)
class ContextInfo:
    """One request context: its user, device, and ad break (``pod_seconds`` 0: a single slot)."""

    user: int
    device: str
    pod_seconds: float
    slots: int


class FeatureSource(Protocol):
    """What the pipeline reads features through."""

    #: Every column in schema order (user block, ad block, context block).
    feature_names: tuple[str, ...]
    ads: AdAttributes
    n_users: int
    n_contexts: int
    n_ads: int

    def plan(self, feature_names: Sequence[str]) -> ColumnPlan: ...

    def user_vector(self, user: int) -> F32: ...

    def context(self, context: int) -> ContextInfo: ...

    def eligible_ads(self, device: str) -> I64 | None: ...

    def gather(self, plan: ColumnPlan, user: int, context: int, ads: I64, out: F32) -> None: ...


class ExportFeatures:
    """The marketplace export as a :class:`FeatureSource`, memory-mapped read-only."""

    def __init__(self, export_dir: str | Path) -> None:
        root = Path(export_dir)
        index = json.loads((root / "index.json").read_text(encoding="utf-8"))
        if index.get("byte_order") != "little":
            raise ValueError(f"{root}: the export must be little-endian (index.json byte_order)")
        arrays = index["arrays"]

        def load(name: str) -> np.ndarray[Any, Any]:
            a = arrays[name]
            dtype = np.dtype(a["dtype"]).newbyteorder("<")
            data = np.fromfile(root / a["file"], dtype=dtype).reshape(a["shape"])
            return data.astype(data.dtype.newbyteorder("="), copy=False)

        self.feature_names: tuple[str, ...] = tuple(index["feature_names"])
        self._blocks: dict[str, tuple[F32, int, int]] = {}
        for block, info in index["blocks"].items():
            self._blocks[block] = (load(info["array"]), int(info["first_column"]), int(info["width"]))
        self._position = {n: i for i, n in enumerate(self.feature_names)}
        self.ads = AdAttributes(
            bid=load("ad_bid"),
            objective=load("ad_objective"),
            category=load("ad_category"),
            advertiser=load("ad_advertiser"),
            creative_len_s=load("ad_creative_len_s"),
        )
        self._request_user = load("request_user")
        self._context_device = load("context_device")
        self._pod_len = load("context_pod_len_s")
        self._n_slots = load("context_n_slots")
        self._devices: list[str] = list(index["vocabularies"]["devices"])
        self._eligible: dict[str, I64 | None] = {}
        for device, array in index["eligible_ads"].items():
            self._eligible[device] = None if array is None else load(array).astype(np.int64)
        self.n_contexts = int(self._context_device.shape[0])
        self.n_users = int(self._blocks["user"][0].shape[0])
        self.n_ads = int(self.ads.bid.shape[0])

    def plan(self, feature_names: Sequence[str]) -> ColumnPlan:
        """The plan for a model whose input is ``feature_names`` (the manifest's), in that order."""
        try:
            cols = np.asarray([self._position[n] for n in feature_names], dtype=np.intp)
        except KeyError as exc:
            raise ValueError(f"feature {exc} is not in the export") from exc
        parts = {}
        for block, (_, first, width) in self._blocks.items():
            inside = np.flatnonzero((cols >= first) & (cols < first + width))
            if inside.size:
                parts[block] = (inside, cols[inside] - first)
        identity = bool(cols.size == len(self.feature_names) and (cols == np.arange(cols.size)).all())
        return ColumnPlan(int(cols.size), parts, identity)

    def user_vector(self, user: int) -> F32:
        row: F32 = self._blocks["user"][0][user]
        return row

    def context(self, context: int) -> ContextInfo:
        pod = float(self._pod_len[context])
        slots = int(self._n_slots[context])
        return ContextInfo(
            int(self._request_user[context]),
            self._devices[int(self._context_device[context])],
            pod if slots > 1 else 0.0,
            slots,
        )

    def eligible_ads(self, device: str) -> I64 | None:
        """Ad ids the device may show (CTV: video only); None: every ad."""
        return self._eligible.get(device)

    def gather(self, plan: ColumnPlan, user: int, context: int, ads: I64, out: F32) -> None:
        """Fill ``out[:len(ads), :plan.width]`` with the model's columns for (user, context, each ad)."""
        n = ads.shape[0]
        if out.shape[0] < n or out.shape[1] != plan.width or out.dtype != np.float32:
            raise ValueError(f"out must be float32 [>= {n}, {plan.width}], got {out.dtype} {out.shape}")
        rows = {"user": user, "context": context}
        if plan.identity:
            for block in _BLOCKS:
                data, first, width = self._blocks[block]
                if block == "ad":
                    out[:n, first : first + width] = data[ads]  # a band of out is not contiguous: no take(out=)
                else:
                    out[:n, first : first + width] = data[rows[block]]
            return
        for block, (dst, src) in plan.parts.items():
            data = self._blocks[block][0]
            if block == "ad":
                out[:n, dst] = data[ads[:, None], src]
            else:
                out[:n, dst] = data[rows[block], src]
