"""The pipeline definition is data: the demo's parses, and every malformed one fails with a message naming why."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.pipeline.spec import DEMO_SPEC, PipelineSpec, SpecError


def _demo() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DEMO_SPEC.read_text(encoding="utf-8"))
    return doc


def test_the_demo_pipeline_names_24_models_in_stage_order() -> None:
    spec = PipelineSpec.load()
    assert spec.retrieval.top_k == 2000 and spec.early_ranking.keep == 200
    assert len(spec.full_scoring.models) == 20
    assert len(spec.models()) == 22, "tower + early ranker + 20 full-scoring (fallbacks are among them)"
    assert spec.models()[:2] == ("retrieval_user_tower", "early_rank_pctr_lr")
    spec.validate([*spec.models(), "extra_model"])


def _broken(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_demo())
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("format",), "other/1", "format"),
        (("retrieval",), KeyError, "missing key 'retrieval'"),
        (("early_ranking", "keep"), 5000, "keep"),
        (("full_scoring", "deadline_ms"), 50, "deadline_ms"),
        (("full_scoring", "models"), [], "empty"),
        (("full_scoring", "models"), ["pctr_gbdt", "pctr_gbdt"], "twice"),
        (("value", "p_click"), "pctr_unknown", "value.p_click"),
        (("value", "unsafe_above"), 2, "unsafe_above"),
        (("auction", "kind"), "vickrey", "vickrey"),
        (("auction", "reserve_cpm"), -1, "reserve_cpm"),
        (("auction", "pod_separation"), "brand", "pod_separation"),
        (("budget_ms",), "soon", "could not convert"),
    ],
)
def test_malformed_definitions_are_refused(path: tuple[str, ...], value: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        PipelineSpec.from_dict(_broken(path, value))


def test_not_json_and_unserved_models_are_refused() -> None:
    with pytest.raises(SpecError, match="not JSON"):
        PipelineSpec.from_json("{")
    spec = PipelineSpec.load()
    with pytest.raises(SpecError, match="not served") as info:
        spec.validate(spec.models()[1:])
    assert "retrieval_user_tower" in str(info.value)
    bad = PipelineSpec.from_dict(_broken(("full_scoring", "fallbacks"), {"pctr_nothing": "pctr_lr"}))
    with pytest.raises(SpecError, match="pctr_nothing"):
        bad.validate([*bad.models(), "pctr_nothing"])
