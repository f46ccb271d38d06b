"""Feature registry: feature groups keyed by entity, one definition for online hydration and offline training.

A :class:`FeatureGroup` is the unit of storage: one value per entity (a packed float32 vector plus
its event time, see :mod:`cache.codec`) in one Hazelcast map, never one entry per feature. Each
feature has a default (served when the entity or the value is missing, and counted), and the group
has a freshness SLO (values older than it are served but flagged stale, and counted).

Versioning: a group's ``version`` is part of its map name. Changing a group's features (order,
width, meaning) needs a new version, written side by side, so that readers of the old layout
never see the new one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["ENTITIES", "Feature", "FeatureGroup", "FeatureRegistry", "UnknownFeatureGroupError"]

#: Entity kinds a group may be keyed by.
ENTITIES = ("user", "ad", "campaign", "context")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownFeatureGroupError(KeyError):
    """A feature group (or a feature) that the registry does not define."""


@dataclass(frozen=True)
class Feature:
    """One float32 feature: its name within the group and the value served when it is missing."""

    name: str
    default: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"feature name {self.name!r}: lower-case letters, digits and '_', starting with a letter")
        if self.dtype != "float32":
            raise ValueError(f"feature {self.name!r}: only float32 features are stored (got {self.dtype})")
        if not np.isfinite(self.default):
            raise ValueError(f"feature {self.name!r}: the default must be finite")


@dataclass(frozen=True)
class FeatureGroup:
    """Features of one entity kind stored and read together (one value per entity)."""

    name: str
    entity: str
    features: tuple[Feature, ...]
    #: Values whose event time is older than this are served but flagged stale.
    freshness_slo_s: float = 86_400.0
    #: Entries expire from the cluster this long after their last write (0: never).
    ttl_s: float = 0.0
    version: int = 1
    defaults: npt.NDArray[np.float32] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"group name {self.name!r}: lower-case letters, digits and '_', starting with a letter")
        if self.entity not in ENTITIES:
            raise ValueError(f"group {self.name!r}: entity must be one of {ENTITIES}, got {self.entity!r}")
        if not self.features:
            raise ValueError(f"group {self.name!r} has no features")
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError(f"group {self.name!r} repeats a feature name")
        if self.version < 1 or self.freshness_slo_s <= 0 or self.ttl_s < 0:
            raise ValueError(f"group {self.name!r}: version >= 1, freshness_slo_s > 0 and ttl_s >= 0 required")
        defaults = np.array([f.default for f in self.features], dtype=np.float32)
        defaults.flags.writeable = False
        object.__setattr__(self, "defaults", defaults)

    @property
    def width(self) -> int:
        return len(self.features)

    @property
    def map_name(self) -> str:
        """The Hazelcast map holding this group: ``fg.<name>.v<version>``."""
        return f"fg.{self.name}.v{self.version}"

    def qualified(self) -> tuple[str, ...]:
        """Feature names as models know them: ``<entity>.<feature>``."""
        return tuple(f"{self.entity}.{f.name}" for f in self.features)


class FeatureRegistry:
    """Feature groups by name; resolves a model's ordered feature list to (group, column) pairs."""

    def __init__(self, groups: Iterable[FeatureGroup]) -> None:
        self._groups: dict[str, FeatureGroup] = {}
        self._by_feature: dict[str, tuple[FeatureGroup, int]] = {}
        for g in groups:
            if g.name in self._groups:
                raise ValueError(f"feature group {g.name!r} defined twice")
            self._groups[g.name] = g
            for i, q in enumerate(g.qualified()):
                if q in self._by_feature:
                    raise ValueError(f"feature {q!r} is in groups {self._by_feature[q][0].name!r} and {g.name!r}")
                self._by_feature[q] = (g, i)

    def group(self, name: str) -> FeatureGroup:
        try:
            return self._groups[name]
        except KeyError:
            raise UnknownFeatureGroupError(f"unknown feature group {name!r}; groups: {sorted(self._groups)}") from None

    @property
    def groups(self) -> Mapping[str, FeatureGroup]:
        return dict(self._groups)

    def resolve(self, feature_names: Sequence[str]) -> dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
        """For each group a model reads: (columns in the group's vector, columns in the model's input).

        Hydration then copies ``vector[:, src]`` into ``matrix[:, dst]`` per group: one fancy-indexed
        copy per group per request, whatever the number of features.
        """
        pairs: dict[str, tuple[list[int], list[int]]] = {}
        for dst, name in enumerate(feature_names):
            try:
                group, src = self._by_feature[name]
            except KeyError:
                raise UnknownFeatureGroupError(f"feature {name!r} is in no registered group") from None
            cols = pairs.setdefault(group.name, ([], []))
            cols[0].append(src)
            cols[1].append(dst)
        return {g: (np.array(s, dtype=np.intp), np.array(d, dtype=np.intp)) for g, (s, d) in pairs.items()}

    @classmethod
    def marketplace(cls) -> FeatureRegistry:
        """The synthetic marketplace's groups: ``user``, ``ad`` and ``context`` profiles (64 features)."""
        from models.synth.schema import AD_FEATURES, CONTEXT_FEATURES, FEATURE_DEFAULTS, FEATURE_NAMES, USER_FEATURES

        index = {n: i for i, n in enumerate(FEATURE_NAMES)}

        def group(name: str, entity: str, names: Sequence[str], slo: float) -> FeatureGroup:
            feats = tuple(Feature(n.split(".", 1)[1], float(FEATURE_DEFAULTS[index[n]])) for n in names)
            return FeatureGroup(name, entity, feats, freshness_slo_s=slo)

        return cls(
            [
                group("user_profile", "user", USER_FEATURES, 6 * 3600.0),
                group("ad_profile", "ad", AD_FEATURES, 24 * 3600.0),
                group("context_profile", "context", CONTEXT_FEATURES, 300.0),
            ]
        )
