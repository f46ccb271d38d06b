"""The demo's training data: one marketplace, its impressions, and their feature matrix, from one seed.

The demo always uses ``WorldConfig(seed=seed)`` and ``ImpressionConfig()`` (defaults), so anyone can regenerate the
exact rows a model was trained and evaluated on from the ``seed`` in its manifest (:func:`holdout_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.manifest import Manifest
from models.synth import schema
from models.synth.impressions import ImpressionConfig, Impressions, sample_impressions
from models.synth.world import World, WorldConfig, make_world

F32 = npt.NDArray[np.float32]


def segment_mask(world: World, impressions: Impressions, segment: Mapping[str, str]) -> npt.NDArray[np.bool_]:
    """True for the impressions in ``segment`` (keys as in :mod:`models.demo.catalog`; ``ValueError`` otherwise)."""
    mask = np.ones(len(impressions), dtype=np.bool_)
    for key, value in segment.items():
        if key == "region":
            mask &= world.user_region[impressions.user_id] == schema.code_of(schema.REGIONS, value)
        elif key == "objective":
            mask &= world.ad_objective[impressions.ad_id] == schema.code_of(schema.OBJECTIVES, value)
        elif key == "format":
            mask &= world.ad_format[impressions.ad_id] == schema.code_of(schema.FORMATS, value)
        elif key == "device":
            mask &= impressions.contexts.device == schema.code_of(schema.DEVICES, value)
        else:
            raise ValueError(f"unknown segment key {key!r}")
    return mask


@dataclass(frozen=True, eq=False)
class DemoData:
    """World, impressions and their full [M, 64] feature matrix (read-only), plus the holdout mask."""

    seed: int
    world: World
    impressions: Impressions
    matrix: F32
    holdout: npt.NDArray[np.bool_]

    @classmethod
    def generate(cls, seed: int = 0) -> DemoData:
        world = make_world(WorldConfig(seed=seed))
        impressions = sample_impressions(world, ImpressionConfig())
        matrix = impressions.matrix(world)
        matrix.setflags(write=False)
        return cls(seed, world, impressions, matrix, impressions.holdout_mask())

    def rows(self, segment: Mapping[str, str], *, holdout: bool) -> npt.NDArray[np.intp]:
        """Indices of the training (``holdout=False``) or holdout rows of a segment."""
        split = self.holdout if holdout else ~self.holdout
        return np.flatnonzero(split & segment_mask(self.world, self.impressions, segment))

    def xy(
        self, features: tuple[str, ...], label: str, segment: Mapping[str, str], *, holdout: bool
    ) -> tuple[F32, npt.NDArray[np.int8]]:
        """The C-contiguous float32 input (columns ``features``) and 0/1 labels of a split of a segment."""
        rows = self.rows(segment, holdout=holdout)
        x = np.ascontiguousarray(self.matrix[np.ix_(rows, schema.feature_indices(features))])
        return x, self.impressions.label(label)[rows]


def holdout_for(manifest: Manifest, data: DemoData | None = None) -> tuple[F32, npt.NDArray[np.int8]]:
    """The holdout inputs and labels a ranking model's manifest metrics were measured on.

    Regenerates the data from ``manifest.seed`` unless ``data`` (for that seed) is given. For a retrieval tower the
    labels are the click labels of the holdout impressions and the input holds the tower's own entity rows.
    """
    if data is None or data.seed != manifest.seed:
        data = DemoData.generate(manifest.seed)
    return data.xy(manifest.feature_names, manifest.label, manifest.segment, holdout=True)
