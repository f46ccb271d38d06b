"""Placement from configuration: profile selection by the host's providers, options per model class, pools."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gateway.options import RuntimeOptions
from gateway.pipeline.placement import Placement, PlacementError
from gateway.pipeline.spec import DEMO_SPEC, PipelineSpec, SpecError

CPU_ONLY = ("CPUExecutionProvider",)
GPU_HOST = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def _demo_placement() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DEMO_SPEC.read_text(encoding="utf-8"))["placement"]
    return doc


def test_auto_picks_the_cpu_profile_on_a_cpu_host_and_gpu_where_cuda_is() -> None:
    cpu = Placement.from_dict(_demo_placement(), CPU_ONLY)
    assert cpu.profile == "cpu"
    assert cpu.options_for("pctr_mlp").providers == ("CPUExecutionProvider",)
    gpu = Placement.from_dict(_demo_placement(), GPU_HOST)
    assert gpu.profile == "gpu"
    # Dense models go to CUDA (CPU listed after it for the ops CUDA lacks) on their own pool; trees stay on CPU.
    assert gpu.options_for("pctr_mlp").providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert gpu.class_of("pctr_mlp").pool == "gpu"
    assert gpu.options_for("pctr_gbdt_region_eu").providers == ("CPUExecutionProvider",)
    assert gpu.pools_for(["pctr_gbdt", "pctr_mlp", "pctr_lr"]) == {
        "scoring": ["pctr_gbdt"],
        "gpu": ["pctr_mlp", "pctr_lr"],
    }
    assert gpu.pool_threads("scoring", cores=2) == 2 and gpu.pool_threads("gpu", cores=2) == 1


def test_options_keep_everything_but_providers_and_threads() -> None:
    doc = _demo_placement()
    doc["profiles"]["cpu"]["tree"]["intra_op_threads"] = 2
    placed = Placement.from_dict(doc, CPU_ONLY)
    base = RuntimeOptions(max_batch=512, allow_spinning=True)
    opts = placed.options_for("pctr_gbdt", base)
    assert (opts.intra_op_threads, opts.max_batch, opts.allow_spinning) == (2, 512, True)


def test_a_named_profile_and_bad_sections_are_checked() -> None:
    doc = _demo_placement()
    doc["profile"] = "gpu"
    assert Placement.from_dict(doc, CPU_ONLY).profile == "gpu", "asked for by name: loading then fails loudly"
    for mutate, message in [
        (lambda d: d.update(profile="tpu"), "not defined"),
        (lambda d: d["models"].update({"*": "quantum"}), "quantum"),
        (lambda d: d["profiles"]["cpu"]["tree"].update(pool="nowhere"), "nowhere"),
        (lambda d: d["profiles"]["cpu"]["tree"].update(providers=[]), "no execution provider"),
        (lambda d: d["pools"].update(scoring=-1), "threads"),
        (lambda d: d.pop("pools"), "pools"),
    ]:
        broken = copy.deepcopy(_demo_placement())
        broken["profile"] = "cpu"
        mutate(broken)
        with pytest.raises(PlacementError, match=message):
            Placement.from_dict(broken, CPU_ONLY)


def test_a_model_no_rule_covers_is_a_spec_error() -> None:
    doc = json.loads(DEMO_SPEC.read_text(encoding="utf-8"))
    doc["placement"]["models"] = {"*_gbdt*": "tree"}
    with pytest.raises(SpecError, match="no placement rule matches model"):
        PipelineSpec.from_dict(doc)
