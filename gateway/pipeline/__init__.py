"""The ad request pipeline: retrieval, early ranking, full scoring by many models, value and auction.

One :class:`~gateway.pipeline.pipeline.Pipeline` runs one ad request through the stages a
:class:`~gateway.pipeline.spec.PipelineSpec` (data, not code) names, under one latency budget, and
answers with the auction's outcome and what each stage did (timings, late models, fallback tiers).
"""

from gateway.pipeline.auction import AuctionKind, AuctionOutcome, PodOutcome
from gateway.pipeline.features import ExportFeatures, FeatureSource
from gateway.pipeline.pipeline import AdRequest, AdResponse, ModelReport, Pipeline, Tier
from gateway.pipeline.spec import PipelineSpec, SpecError

__all__ = [
    "AdRequest",
    "AdResponse",
    "AuctionKind",
    "AuctionOutcome",
    "ExportFeatures",
    "FeatureSource",
    "ModelReport",
    "Pipeline",
    "PipelineSpec",
    "PodOutcome",
    "SpecError",
    "Tier",
]
