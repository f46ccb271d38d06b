"""Validation gates: the checks a version must pass before it may serve, with a report a person can read.

Gates, in order (a gate that needs a session is skipped when the model did not load):

==============  ======================================================================================
``checker``     ``onnx.checker`` (full check, with shape inference) accepts the graph
``operators``   every opset domain and every node's domain is on the allow-list (no custom-op libraries),
                the default opset is within ``[min_opset, max_opset]``, every operator exists in ONNX
``signature``   the session's inputs and outputs match the manifest (names, dtypes, shapes, the input
                width is the number of declared features) and the serving conventions hold
``parity``      the package's reference inputs give the reference outputs, max abs difference <= 1e-5
``finite``      no NaN or inf out of a fuzzed input set (zeros, large values, noise around the reference)
``range``       probability outputs lie in [0, 1] on the reference and fuzzed inputs
``latency``     p99 of one call at the manifest's declared batch is within its latency budget, in the
                quietest of ``latency_rounds`` rounds (a neighbour's burst on a shared host should not
                fail a model that meets its budget; a slow model fails every round)
``calibration`` mean prediction / mean label within ``1 +/- (calibration_tolerance + noise)``: on the
                reference labels when the package ships them, else the manifest's holdout ratio. ``noise`` is
                ``calibration_z / sqrt(positives)``, the sampling error of the ratio when the holdout holds few
                positives (expected positives = rows x the static prior); a large holdout gets no slack
==============  ======================================================================================

Validation reads the package and never touches what serves: a failing gate changes nothing.

Thread-safety: :func:`validate_package` keeps no state; run it from any thread.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import onnx
import onnxruntime as ort

from models.manifest import ManifestError, OutputSemantics
from models.package import Package, PackageError

__all__ = ["GATES", "GateResult", "ValidationOptions", "ValidationReport", "validate_package"]

GATES: Final = ("checker", "operators", "signature", "parity", "finite", "range", "latency", "calibration")

_ONNX_DTYPES: Final = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "string",
}


@dataclass(frozen=True)
class ValidationOptions:
    """Thresholds of the gates; defaults are the serving bar."""

    #: Domains a graph may use: ONNX and ONNX-ML. Anything else needs a custom-op library: refused.
    allowed_domains: frozenset[str] = frozenset({"", "ai.onnx", "ai.onnx.ml"})
    #: Default-domain opset range accepted (older graphs predate today's operator semantics; newer ones may not load).
    min_opset: int = 9
    max_opset: int = 23
    #: Largest absolute difference from the shipped reference predictions.
    parity_atol: float = 1e-5
    #: Rows of noise around the reference inputs for the finite and range gates (plus zeros and +/-1e4 rows).
    fuzz_rows: int = 512
    #: Timed calls at the declared batch for the latency gate (after 10 untimed ones).
    latency_calls: int = 300
    #: Rounds of ``latency_calls``; the gate judges the round with the lowest p99.
    latency_rounds: int = 5
    #: Allowed |mean prediction / mean label - 1| on a large holdout.
    calibration_tolerance: float = 0.1
    #: Standard errors of slack for a small holdout (see the module docstring); 0 turns the slack off.
    calibration_z: float = 3.0
    #: Seed of the fuzzed inputs.
    seed: int = 0


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    detail: str
    seconds: float = 0.0
    skipped: bool = False


@dataclass(frozen=True)
class ValidationReport:
    """Every gate's result for one version; :attr:`passed` only when none failed or was skipped."""

    model: str
    digest: str
    gates: Sequence[GateResult] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return bool(self.gates) and all(g.passed and not g.skipped for g in self.gates)

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "digest": self.digest,
            "passed": self.passed,
            "gates": [asdict(g) for g in self.gates],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def render(self) -> str:
        """A plain-text table, one line per gate, then the verdict."""
        lines = [f"validation of {self.model} (package {self.digest[:12]})"]
        for g in self.gates:
            mark = "SKIP" if g.skipped else ("PASS" if g.passed else "FAIL")
            lines.append(f"  {mark}  {g.gate:<12} {g.detail}")
        lines.append("verdict: " + ("PASS" if self.passed else f"FAIL ({', '.join(g.gate for g in self.failed)})"))
        return "\n".join(lines)


class _GateFailed(Exception):
    pass


def validate_package(
    package: Package,
    options: ValidationOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> ValidationReport:
    """Run every gate on ``package``; ``progress(gate)`` is called after each one (for a progress bar)."""
    options = options or ValidationOptions()
    run = _Run(package, options)
    results: list[GateResult] = []
    for gate in GATES:
        start = time.perf_counter()
        if gate in run.blocked_by:
            result = GateResult(gate, False, f"skipped: needs {run.blocked_by[gate]}", 0.0, skipped=True)
        else:
            try:
                detail = getattr(run, gate)()
                result = GateResult(gate, True, detail, time.perf_counter() - start)
            except (_GateFailed, PackageError, ManifestError) as exc:
                result = GateResult(gate, False, str(exc), time.perf_counter() - start)
                run.block_after(gate)
        results.append(result)
        if progress is not None:
            progress(gate)
    return ValidationReport(str(package.id), package.digest, tuple(results))


_DEPENDS: Final = {
    "checker": ("operators", "signature", "parity", "finite", "range", "latency"),
    "signature": ("parity", "finite", "range", "latency"),
}


class _Run:
    """State shared by the gates of one validation (the parsed model, the session, the outputs seen)."""

    def __init__(self, package: Package, options: ValidationOptions) -> None:
        self.package = package
        self.manifest = package.manifest
        self.options = options
        self.blocked_by: dict[str, str] = {}
        self.session: ort.InferenceSession | None = None
        self.outputs: list[np.ndarray[Any, Any]] = []

    def block_after(self, gate: str) -> None:
        for later in _DEPENDS.get(gate, ()):
            self.blocked_by.setdefault(later, gate)

    def _fail(self, why: str) -> _GateFailed:
        return _GateFailed(why)

    def checker(self) -> str:
        try:
            onnx.checker.check_model(str(self.package.onnx_path), full_check=True)
        except Exception as exc:  # onnx raises ValidationError, InferenceError or protobuf errors
            raise self._fail(f"ONNX checker rejected the graph: {str(exc).splitlines()[0][:300]}") from exc
        try:
            so = ort.SessionOptions()
            so.intra_op_num_threads = 1
            so.inter_op_num_threads = 1
            so.log_severity_level = 3
            self.session = ort.InferenceSession(str(self.package.onnx_path), so, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise self._fail(f"ONNX Runtime cannot load the graph: {str(exc)[:300]}") from exc
        return "graph is well-formed; ONNX Runtime loads it"

    def operators(self) -> str:
        model = onnx.load(str(self.package.onnx_path), load_external_data=False)
        allowed = self.options.allowed_domains
        domains = {o.domain: o.version for o in model.opset_import}
        bad = sorted(d for d in domains if d not in allowed)
        if bad:
            raise self._fail(f"opset domain(s) {bad} need custom-op libraries; allowed: {sorted(allowed)}")
        default = domains.get("", domains.get("ai.onnx"))
        if default is None or not self.options.min_opset <= default <= self.options.max_opset:
            raise self._fail(f"default opset {default} is outside [{self.options.min_opset}, {self.options.max_opset}]")
        ops: set[tuple[str, str]] = set()
        for graph in _graphs(model.graph):
            ops.update((n.domain, n.op_type) for n in graph.node)
        unknown = sorted(f"{d or 'ai.onnx'}:{op}" for d, op in ops if d not in allowed or not onnx.defs.has(op, d))
        if unknown:
            raise self._fail(f"operator(s) outside the allow-list: {', '.join(unknown)}")
        return f"opset {default}; {len(ops)} operator type(s), all ONNX/ONNX-ML"

    def signature(self) -> str:
        assert self.session is not None
        self.manifest.validate_serving()
        problems: list[str] = []
        for kind, declared, actual in (
            ("input", self.manifest.inputs, self.session.get_inputs()),
            ("output", self.manifest.outputs, self.session.get_outputs()),
        ):
            if [s.name for s in declared] != [a.name for a in actual]:
                problems.append(f"{kind} names {[a.name for a in actual]}, manifest says {[s.name for s in declared]}")
                continue
            for spec, arg in zip(declared, actual, strict=True):
                dtype = _ONNX_DTYPES.get(arg.type, arg.type)
                if dtype != spec.dtype:
                    problems.append(f"{kind} {spec.name} is {dtype}, manifest says {spec.dtype}")
                dims = tuple(d if isinstance(d, int) and d > 0 else -1 for d in arg.shape)
                if dims != spec.shape:
                    problems.append(f"{kind} {spec.name} has shape {list(dims)}, manifest says {list(spec.shape)}")
        if problems:
            raise self._fail("; ".join(problems))
        width = self.manifest.inputs[0].shape[-1]
        return f"{self.manifest.inputs[0].name}[-1, {width}] = {len(self.manifest.feature_names)} declared features"

    def _run(self, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        assert self.session is not None
        name = self.manifest.inputs[0].name
        (y,) = self.session.run([self.manifest.outputs[0].name], {name: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(y)

    def parity(self) -> str:
        ref = self.package.reference()
        got = self._run(ref.inputs)
        self.outputs.append(got)
        if got.shape != ref.expected.shape:
            raise self._fail(f"output shape {got.shape} differs from the reference {ref.expected.shape}")
        diff = float(np.max(np.abs(got.astype(np.float64) - ref.expected.astype(np.float64))))
        if not diff <= self.options.parity_atol:
            raise self._fail(f"max |output - reference| = {diff:.3g} > {self.options.parity_atol:g} on {len(got)} rows")
        return f"max |output - reference| = {diff:.3g} on {len(got)} rows"

    def _fuzz(self) -> np.ndarray[Any, Any]:
        ref = self.package.reference()
        rng = np.random.default_rng(self.options.seed)
        n, width = self.options.fuzz_rows, ref.inputs.shape[1]
        scale = np.maximum(ref.inputs.std(axis=0), 1e-3)
        rows = ref.inputs[rng.integers(0, len(ref.inputs), n)]
        parts = [
            np.zeros((8, width)),
            rows + rng.normal(size=(n, width)) * scale,
            rng.normal(size=(n // 4, width)) * 10.0 * scale,
            np.full((4, width), 1e4),
            np.full((4, width), -1e4),
        ]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def finite(self) -> str:
        x = self._fuzz()
        y = self._run(x)
        self.outputs.append(y)
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            raise self._fail(f"{bad} non-finite output value(s) on {len(x)} fuzzed rows")
        return f"all outputs finite on {len(x)} fuzzed rows"

    def range(self) -> str:
        if self.manifest.output_semantics is not OutputSemantics.PROBABILITY:
            return f"not a probability ({self.manifest.output_semantics.value}): no range to check"
        values = np.concatenate([o.reshape(-1) for o in self.outputs]) if self.outputs else np.zeros(0)
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise self._fail("no output to check")
        lo, hi = float(finite.min()), float(finite.max())
        if lo < 0.0 or hi > 1.0:
            raise self._fail(f"probability outputs span [{lo:.4g}, {hi:.4g}], outside [0, 1]")
        return f"outputs in [{lo:.4g}, {hi:.4g}]"

    def latency(self) -> str:
        budget = self.manifest.latency_budget
        ref = self.package.reference()
        rows = ref.inputs[np.arange(budget.batch) % len(ref.inputs)]
        x = np.ascontiguousarray(rows, dtype=np.float32)
        for _ in range(10):
            self._run(x)
        clock = time.perf_counter_ns
        rounds: list[float] = []
        for _ in range(max(1, self.options.latency_rounds)):
            samples = np.empty(self.options.latency_calls, dtype=np.int64)
            for i in range(len(samples)):
                t0 = clock()
                self._run(x)
                samples[i] = clock() - t0
            rounds.append(float(np.percentile(samples, 99)) / 1000.0)
        p99_us = min(rounds)
        spread = f"rounds {', '.join(f'{r:.0f}' for r in rounds)} us"
        if p99_us > budget.p99_us:
            raise self._fail(
                f"p99 {p99_us:.0f} us at batch {budget.batch} over the budget of {budget.p99_us} us ({spread})"
            )
        return f"p99 {p99_us:.0f} us at batch {budget.batch} (budget {budget.p99_us} us; {spread})"

    def calibration(self) -> str:
        if self.manifest.output_semantics is not OutputSemantics.PROBABILITY:
            return "not a probability: no calibration to check"
        ref = self.package.reference()
        tol = self.options.calibration_tolerance
        if ref.labels is not None and float(np.sum(ref.labels)) > 0:
            ratio = float(np.mean(ref.expected, dtype=np.float64) / np.mean(ref.labels, dtype=np.float64))
            positives = float(np.sum(ref.labels))
            source = f"reference labels ({len(ref.labels)} rows)"
        else:
            ratio = self.manifest.holdout.calibration_ratio
            prior = self.manifest.fallback.value if 0.0 < self.manifest.fallback.value < 1.0 else 0.0
            positives = self.manifest.holdout.n * prior
            source = f"manifest holdout (n={self.manifest.holdout.n})"
        slack = self.options.calibration_z / math.sqrt(positives) if positives > 0 else 0.0
        bound = tol + slack
        if not math.isfinite(ratio) or abs(ratio - 1.0) > bound:
            raise self._fail(f"mean prediction / mean label = {ratio:.4f} on {source}, outside 1 +/- {bound:.3f}")
        return f"mean prediction / mean label = {ratio:.4f} on {source} (bound 1 +/- {bound:.3f})"


def _graphs(graph: onnx.GraphProto) -> list[onnx.GraphProto]:
    """``graph`` and every subgraph (If/Loop/Scan bodies)."""
    out = [graph]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                out.extend(_graphs(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    out.extend(_graphs(g))
    return out
