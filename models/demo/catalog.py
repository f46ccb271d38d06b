"""The 24 demo models: what each predicts, from which features, on which segment, with which algorithm.

The catalog is data. :mod:`models.demo.build` turns each :class:`ModelSpec` into ``<out>/models/<name>/1/``. A
segment restricts both the training and the holdout rows; its keys are:

* ``region``: the user's region (:data:`~models.synth.schema.REGIONS`),
* ``objective``: the ad's campaign objective (:data:`~models.synth.schema.OBJECTIVES`),
* ``device``: the request's device (:data:`~models.synth.schema.DEVICES`),
* ``format``: the ad's creative format (:data:`~models.synth.schema.FORMATS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from models.manifest import Stage, Task
from models.synth import schema


class Algo(StrEnum):
    """How a model is trained and exported."""

    GBDT = "gbdt"  # LightGBM -> onnxmltools
    MLP = "mlp"  # scikit-learn MLPClassifier -> skl2onnx
    LR = "lr"  # scikit-learn LogisticRegression -> skl2onnx
    USER_TOWER = "user_tower"  # numpy two-tower model, user side -> onnx.helper
    AD_TOWER = "ad_tower"  # numpy two-tower model, ad side -> onnx.helper


FRAMEWORK: Final = {
    Algo.GBDT: "lightgbm",
    Algo.MLP: "sklearn",
    Algo.LR: "sklearn",
    Algo.USER_TOWER: "numpy",
    Algo.AD_TOWER: "numpy",
}

LATENCY_BUDGET: Final = {  # (p99 us, batch): about 4x the p99 measured on 2 cores (onnxruntime 1.32, 2 callers)
    Algo.GBDT: (2_500, 256),
    Algo.MLP: (1_000, 256),
    Algo.LR: (800, 256),
    Algo.USER_TOWER: (300, 1),
    Algo.AD_TOWER: (1_000, 256),
}

EARLY_RANK_FEATURES: Final = (
    "user.hist_ctr",
    "user.hist_cvr",
    "user.completion_rate",
    "user.ad_fatigue",
    "user.log_sessions_7d",
    "ad.quality",
    "ad.hist_ctr",
    "ad.hist_cvr",
    "ad.hist_completion",
    "ad.log_bid",
    "ad.is_video",
    "ad.creative_len",
    "context.device_mobile",
    "context.device_ctv",
    "context.page_quality",
    "context.slot_pos",
)
"""The 16 cheap features of the early-ranking models."""

ALL: Final = schema.FEATURE_NAMES
AD_AND_CONTEXT: Final = schema.AD_FEATURES + schema.CONTEXT_FEATURES
OWNER: Final = "scoregate-demo"
EMBEDDING_DIM: Final = 16


@dataclass(frozen=True)
class ModelSpec:
    """One demo model. ``label`` is one of :data:`models.synth.impressions.LABELS`."""

    name: str
    stage: Stage
    task: Task
    algo: Algo
    label: str
    features: tuple[str, ...]
    segment: tuple[tuple[str, str], ...] = field(default=())

    @property
    def segment_dict(self) -> dict[str, str]:
        return dict(self.segment)


_STAGE: Final = {
    Task.RETRIEVAL_USER: Stage.RETRIEVAL,
    Task.RETRIEVAL_AD: Stage.RETRIEVAL,
    Task.EARLY_RANK: Stage.EARLY_RANKING,
}


def _spec(name: str, task: Task, algo: Algo, label: str, features: tuple[str, ...], **segment: str) -> ModelSpec:
    stage = _STAGE.get(task, Stage.FULL_SCORING)
    return ModelSpec(name, stage, task, algo, label, features, tuple(sorted(segment.items())))


_OBJECTIVES, _REGIONS = schema.OBJECTIVES, schema.REGIONS

CATALOG: Final[tuple[ModelSpec, ...]] = (
    # retrieval: one two-tower model, exported as its two towers
    _spec("retrieval_user_tower", Task.RETRIEVAL_USER, Algo.USER_TOWER, "click", schema.USER_FEATURES),
    _spec("retrieval_ad_tower", Task.RETRIEVAL_AD, Algo.AD_TOWER, "click", schema.AD_FEATURES),
    # early ranking: logistic regressions on 16 features
    _spec("early_rank_pctr_lr", Task.EARLY_RANK, Algo.LR, "click", EARLY_RANK_FEATURES),
    _spec("early_rank_pcompletion_lr", Task.EARLY_RANK, Algo.LR, "completion", EARLY_RANK_FEATURES, format="video"),
    # full scoring: pCTR, global and per segment
    _spec("pctr_gbdt", Task.PCTR, Algo.GBDT, "click", ALL),
    _spec("pctr_mlp", Task.PCTR, Algo.MLP, "click", ALL),
    _spec("pctr_lr", Task.PCTR, Algo.LR, "click", ALL),
    *(_spec(f"pctr_gbdt_obj_{o}", Task.PCTR, Algo.GBDT, "click", ALL, objective=o) for o in _OBJECTIVES),
    *(_spec(f"pctr_gbdt_region_{r}", Task.PCTR, Algo.GBDT, "click", ALL, region=r) for r in _REGIONS),
    _spec("pctr_gbdt_device_ctv", Task.PCTR, Algo.GBDT, "click", ALL, device="ctv"),
    # full scoring: pCompletion (video creatives)
    _spec("pcompletion_gbdt", Task.PCOMPLETION, Algo.GBDT, "completion", ALL, format="video"),
    _spec("pcompletion_mlp", Task.PCOMPLETION, Algo.MLP, "completion", ALL, format="video"),
    _spec("pcompletion_gbdt_device_ctv", Task.PCOMPLETION, Algo.GBDT, "completion", ALL, device="ctv"),
    # full scoring: pConversion (per impression: click and then convert)
    _spec("pconversion_gbdt", Task.PCONVERSION, Algo.GBDT, "conversion", ALL),
    _spec("pconversion_mlp", Task.PCONVERSION, Algo.MLP, "conversion", ALL),
    _spec("pconversion_gbdt_obj_cpa", Task.PCONVERSION, Algo.GBDT, "conversion", ALL, objective="cpa"),
    # full scoring: brand safety of the (ad, context) pair
    _spec("brand_safety_gbdt", Task.BRAND_SAFETY, Algo.GBDT, "unsafe", AD_AND_CONTEXT),
    _spec("brand_safety_lr", Task.BRAND_SAFETY, Algo.LR, "unsafe", AD_AND_CONTEXT),
)

CATALOG_NAMES: Final = frozenset(s.name for s in CATALOG)

assert len(CATALOG) == 24 and len(CATALOG_NAMES) == 24, "the demo has exactly 24 models"


def spec(name: str) -> ModelSpec:
    """The catalog entry called ``name`` (``KeyError`` if none)."""
    for s in CATALOG:
        if s.name == name:
            return s
    raise KeyError(f"no demo model named {name!r}")
