"""What a pipeline runs, as data: ``PipelineSpec.from_json`` reads it, ``validate`` checks it against the models.

JSON layout (``gateway/pipeline/ads.json`` is the demo's)::

    {
      "format": "scoregate.pipeline/1",
      "budget_ms": 20,                       # the whole request's deadline
      "retrieval": {"user_tower": "retrieval_user_tower", "embeddings": "ad_embeddings.npy", "top_k": 2000},
      "early_ranking": {"model": "early_rank_pctr_lr", "keep": 200},
      "full_scoring": {
        "deadline_ms": 12,                   # per-stage budget for the parallel fan-out
        "models": ["pctr_gbdt", ...],        # every model scores every surviving candidate
        "fallbacks": {"pctr_gbdt": "pctr_lr"}    # tier 2; tier 3 is each manifest's static prior
      },
      "value": {"p_click": "pctr_gbdt", "p_conversion": "pconversion_gbdt", "p_completion": "pcompletion_gbdt",
                "p_unsafe": "brand_safety_gbdt", "unsafe_above": 0.3},
      "auction": {"kind": "second_price", "reserve_cpm": 1.0, "pod_separation": "category"},
      "placement": {...}                     # optional: providers, threads, pools (gateway/pipeline/placement.py)
    }

Models are named, never loaded here: :meth:`PipelineSpec.validate` checks the names against what an engine
serves, so a typo fails at start-up with the list of known models rather than on the first request.

Thread-safety: immutable values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from gateway.pipeline.auction import AuctionKind
from gateway.pipeline.placement import DEFAULT_PLACEMENT, Placement, PlacementError

__all__ = ["DEMO_SPEC", "FORMAT", "PipelineSpec", "SpecError"]

FORMAT: Final = "scoregate.pipeline/1"
DEMO_SPEC: Final = Path(__file__).with_name("ads.json")


class SpecError(ValueError):
    """A pipeline definition is malformed or names models that are not served."""


@dataclass(frozen=True)
class RetrievalSpec:
    user_tower: str
    embeddings: str
    top_k: int


@dataclass(frozen=True)
class EarlyRankingSpec:
    model: str
    keep: int


@dataclass(frozen=True)
class FullScoringSpec:
    deadline_ms: float
    models: tuple[str, ...]
    fallbacks: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ValueSpec:
    p_click: str
    p_conversion: str
    p_completion: str
    p_unsafe: str
    unsafe_above: float


@dataclass(frozen=True)
class AuctionSpec:
    kind: AuctionKind
    reserve_cpm: float
    pod_separation: str = "category"


@dataclass(frozen=True)
class PipelineSpec:
    budget_ms: float
    retrieval: RetrievalSpec
    early_ranking: EarlyRankingSpec
    full_scoring: FullScoringSpec
    value: ValueSpec
    auction: AuctionSpec
    #: Where models run (:mod:`gateway.pipeline.placement`); parsed against the host's providers when used.
    placement: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_PLACEMENT))

    @classmethod
    def from_json(cls, text: str) -> PipelineSpec:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"pipeline definition is not JSON: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def load(cls, path: str | Path = DEMO_SPEC) -> PipelineSpec:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    @classmethod
    def from_dict(cls, doc: Any) -> PipelineSpec:
        if not isinstance(doc, Mapping) or doc.get("format") != FORMAT:
            raise SpecError(f"not a pipeline definition: 'format' must be {FORMAT!r}")
        try:
            r, e, f, v, a = (doc[k] for k in ("retrieval", "early_ranking", "full_scoring", "value", "auction"))
            spec = cls(
                budget_ms=float(doc["budget_ms"]),
                retrieval=RetrievalSpec(str(r["user_tower"]), str(r["embeddings"]), int(r["top_k"])),
                early_ranking=EarlyRankingSpec(str(e["model"]), int(e["keep"])),
                full_scoring=FullScoringSpec(
                    float(f["deadline_ms"]),
                    tuple(str(m) for m in f["models"]),
                    {str(k): str(val) for k, val in f.get("fallbacks", {}).items()},
                ),
                value=ValueSpec(
                    str(v["p_click"]),
                    str(v["p_conversion"]),
                    str(v["p_completion"]),
                    str(v["p_unsafe"]),
                    float(v["unsafe_above"]),
                ),
                auction=AuctionSpec(
                    AuctionKind(a["kind"]), float(a["reserve_cpm"]), str(a.get("pod_separation", "category"))
                ),
                placement=dict(doc.get("placement", DEFAULT_PLACEMENT)),
            )
        except KeyError as exc:
            raise SpecError(f"pipeline definition: missing key {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise SpecError(f"pipeline definition: {exc}") from exc
        spec._check_values()
        return spec

    def _check_values(self) -> None:
        if not 0 < self.full_scoring.deadline_ms <= self.budget_ms:
            raise SpecError("full_scoring.deadline_ms must be in (0, budget_ms]")
        if not 0 < self.early_ranking.keep <= self.retrieval.top_k:
            raise SpecError("early_ranking.keep must be in (0, retrieval.top_k]")
        if not self.full_scoring.models:
            raise SpecError("full_scoring.models is empty")
        if len(set(self.full_scoring.models)) != len(self.full_scoring.models):
            raise SpecError("full_scoring.models lists a model twice")
        for role in ("p_click", "p_conversion", "p_completion", "p_unsafe"):
            if getattr(self.value, role) not in self.full_scoring.models:
                raise SpecError(f"value.{role} = {getattr(self.value, role)!r} is not among full_scoring.models")
        if not 0 <= self.value.unsafe_above <= 1:
            raise SpecError("value.unsafe_above must be in [0, 1]")
        if self.auction.reserve_cpm < 0:
            raise SpecError("auction.reserve_cpm must be >= 0")
        if self.auction.pod_separation not in ("category", "advertiser", "none"):
            raise SpecError("auction.pod_separation must be 'category', 'advertiser' or 'none'")
        try:  # the profile is resolved per host later; here every profile must parse and cover every model
            for profile in self.placement.get("profiles", {}):
                placed = Placement.from_dict({**self.placement, "profile": profile}, ())
                for model in self.models():
                    placed.class_of(model)
        except PlacementError as exc:
            raise SpecError(f"placement: {exc}") from exc

    def models(self) -> tuple[str, ...]:
        """Every model the pipeline calls, in stage order, fallbacks last."""
        names = [self.retrieval.user_tower, self.early_ranking.model, *self.full_scoring.models]
        names += [m for m in self.full_scoring.fallbacks.values() if m not in names]
        return tuple(dict.fromkeys(names))

    def stages(self) -> dict[str, str]:
        """Each model the pipeline calls and the stage that calls it (fallbacks: ``full_scoring``)."""
        stages = {self.retrieval.user_tower: "retrieval", self.early_ranking.model: "early_ranking"}
        for model in self.models():
            stages.setdefault(model, "full_scoring")
        return stages

    def validate(self, served: Iterable[str]) -> None:
        """Raise :class:`SpecError` naming every model the pipeline needs and ``served`` lacks."""
        known = set(served)
        missing = [m for m in self.models() if m not in known]
        if missing:
            raise SpecError(f"the pipeline names models that are not served: {missing}; served: {sorted(known)}")
        for primary in self.full_scoring.fallbacks:
            if primary not in self.full_scoring.models:
                raise SpecError(f"full_scoring.fallbacks names {primary!r}, which is not a full-scoring model")
