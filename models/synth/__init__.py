"""A synthetic ad marketplace with a known ground truth, for demos, tests and benchmarks.

Modules, one concept each:

* :mod:`~models.synth.schema`: vocabularies and the global ordered feature list (64 features).
* :mod:`~models.synth.world`: users, advertisers, campaigns, ads and placements (:func:`make_world`).
* :mod:`~models.synth.contexts`: request contexts (device, hour, genre, CTV pod slot).
* :mod:`~models.synth.truth`: the ground-truth click, completion, conversion and brand-safety probabilities.
* :mod:`~models.synth.features`: the vectorised [N, 64] float32 feature-matrix builders.
* :mod:`~models.synth.impressions`: labelled impressions over event time, with a holdout split.
* :mod:`~models.synth.tables`: the offline Parquet tables.
* :mod:`~models.synth.streams`: timed request streams with bursts and drifts.

Everything is deterministic under a seed. Importing this package reads no environment and starts nothing; only
:mod:`~models.synth.tables` imports pyarrow, and only when imported.
"""

from models.synth.contexts import Context, ContextBatch, sample_contexts
from models.synth.features import candidate_matrix, impression_matrix
from models.synth.impressions import LABELS, ImpressionConfig, Impressions, sample_impressions
from models.synth.schema import (
    AD_FEATURES,
    CONTEXT_FEATURES,
    FEATURE_DEFAULTS,
    FEATURE_NAMES,
    N_FEATURES,
    USER_FEATURES,
    feature_indices,
)
from models.synth.streams import (
    BrokenFeature,
    Burst,
    CtrShift,
    Drift,
    FeatureShift,
    Outcomes,
    Request,
    RequestStream,
    StreamConfig,
)
from models.synth.truth import Truth, truth
from models.synth.world import World, WorldConfig, make_world

__all__ = [
    "AD_FEATURES",
    "CONTEXT_FEATURES",
    "FEATURE_DEFAULTS",
    "FEATURE_NAMES",
    "LABELS",
    "N_FEATURES",
    "USER_FEATURES",
    "BrokenFeature",
    "Burst",
    "Context",
    "ContextBatch",
    "CtrShift",
    "Drift",
    "FeatureShift",
    "ImpressionConfig",
    "Impressions",
    "Outcomes",
    "Request",
    "RequestStream",
    "StreamConfig",
    "Truth",
    "World",
    "WorldConfig",
    "candidate_matrix",
    "feature_indices",
    "impression_matrix",
    "make_world",
    "sample_contexts",
    "sample_impressions",
    "truth",
]
