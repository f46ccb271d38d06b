"""The model package format: ``<name>/<version>/manifest.json`` beside ``model.onnx``.

A :class:`Manifest` says what a model computes and how to call it: its input and output tensors, the exact ordered
feature columns of its input, what its output means, what it was trained on and how well it did on a holdout, its
latency budget and the static prior to serve when it cannot answer.

Serving conventions (checked by :meth:`Manifest.validate_serving` rather than the constructor, since retrieval
towers differ):

1. A ranking or scoring model has one input ``features`` float32 ``[-1, F]`` with ``F == len(feature_names)`` and one
   output ``score`` float32 ``[-1]``: the probability of the positive class.
2. A retrieval tower has one input ``features`` float32 ``[-1, F]`` and one output ``embedding`` float32 ``[-1, D]``.
3. ``-1`` marks the dynamic batch dimension; every other dimension is fixed.

JSON contract: :meth:`Manifest.to_json` writes keys in a fixed order (``format`` first; mapping fields sorted), so
equal manifests give equal bytes. :meth:`Manifest.from_json` rejects missing keys, unknown keys, wrong types and
invalid values with :class:`ManifestError` (a ``ValueError``), naming the field.

Thread-safety: manifests are immutable values and may be shared freely.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Self, get_args, get_origin, get_type_hints

FORMAT: Final = "scoregate.model/1"
"""The format tag every manifest carries; a reader refuses any other."""

MANIFEST_FILE: Final = "manifest.json"
DTYPES: Final = frozenset({"float32", "float64", "float16", "int64", "int32", "int8", "uint8", "bool", "string"})

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
_VERSION = re.compile(r"^[0-9]{1,18}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ManifestError(ValueError):
    """A manifest is malformed: bad JSON, a missing or unknown key, a wrong type or an invalid value."""


class Stage(StrEnum):
    """Where in the cascade a model runs."""

    RETRIEVAL = "retrieval"  # candidate generation over the whole ad corpus (embeddings)
    EARLY_RANKING = "early_ranking"  # cheap pruning of retrieved candidates
    FULL_SCORING = "full_scoring"  # the expensive models whose scores enter the auction


class Task(StrEnum):
    """What a model predicts."""

    PCTR = "pctr"
    PCOMPLETION = "pcompletion"
    PCONVERSION = "pconversion"
    BRAND_SAFETY = "brand_safety"
    RETRIEVAL_USER = "retrieval_user"
    RETRIEVAL_AD = "retrieval_ad"
    EARLY_RANK = "early_rank"


class OutputSemantics(StrEnum):
    """What the (single) output holds."""

    PROBABILITY = "probability"  # P(label = 1), in [0, 1]
    EMBEDDING = "embedding"  # a vector; relevance is a dot product with the other tower's


def _fail(what: str, why: str) -> ManifestError:
    return ManifestError(f"manifest field {what!r}: {why}")


def _readonly(m: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted(m.items())))


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor: numpy-style dtype name and shape, ``-1`` for the dynamic batch dimension."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise _fail("tensor.name", "must be non-empty")
        if self.dtype not in DTYPES:
            raise _fail(f"tensor {self.name}.dtype", f"{self.dtype!r} is not one of {sorted(DTYPES)}")
        if any(d == 0 or d < -1 for d in self.shape):
            raise _fail(f"tensor {self.name}.shape", f"{self.shape}: dims must be positive or -1")


@dataclass(frozen=True)
class TrainingWindow:
    """Event-time range ``[start, end)`` of the training data (timezone-aware)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise _fail("training_window", "times must be timezone-aware")
        if self.start > self.end:
            raise _fail("training_window", f"start {self.start} is after end {self.end}")


@dataclass(frozen=True)
class HoldoutMetrics:
    """Metrics of the exported artifact on a holdout split.

    ``calibration_ratio`` is mean prediction / mean label (1.0 is calibrated); ``n`` the holdout size. ``extra``
    holds model-specific metrics (e.g. ``recall_at_100`` for retrieval), read-only and sorted by key.
    """

    auc: float
    log_loss: float
    calibration_ratio: float
    n: int
    extra: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("auc", "log_loss", "calibration_ratio"):
            if not math.isfinite(getattr(self, name)):
                raise _fail(f"holdout.{name}", "must be finite")
        if not 0.0 <= self.auc <= 1.0:
            raise _fail("holdout.auc", f"{self.auc} is not in [0, 1]")
        if self.n < 0:
            raise _fail("holdout.n", "must be >= 0")
        if not all(math.isfinite(v) for v in self.extra.values()):
            raise _fail("holdout.extra", "values must be finite")
        object.__setattr__(self, "extra", _readonly(self.extra))

    def __hash__(self) -> int:
        return hash((self.auc, self.log_loss, self.calibration_ratio, self.n, tuple(self.extra.items())))


@dataclass(frozen=True)
class LatencyBudget:
    """The p99 latency a model must meet, in microseconds, for one call at ``batch`` rows."""

    p99_us: int
    batch: int

    def __post_init__(self) -> None:
        if self.p99_us <= 0 or self.batch <= 0:
            raise _fail("latency_budget", "p99_us and batch must be positive")


@dataclass(frozen=True)
class Fallback:
    """What to serve when the model cannot answer; ``static_prior`` means the constant ``value``."""

    kind: str
    value: float

    def __post_init__(self) -> None:
        if not self.kind:
            raise _fail("fallback.kind", "must be non-empty")
        if not math.isfinite(self.value):
            raise _fail("fallback.value", "must be finite")


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """A model package's manifest (see the module docstring for the conventions and the JSON contract).

    Identity is ``(name, version)``; a manifest hashes on that and its artifact's digest.
    """

    format: str = FORMAT
    name: str
    version: str
    task: Task
    stage: Stage
    framework: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    feature_names: tuple[str, ...]
    output_semantics: OutputSemantics
    label: str
    segment: Mapping[str, str] = field(default_factory=dict)
    owner: str
    training_window: TrainingWindow
    holdout: HoldoutMetrics
    latency_budget: LatencyBudget
    fallback: Fallback
    seed: int
    onnx_file: str = "model.onnx"
    onnx_sha256: str

    def __post_init__(self) -> None:
        if self.format != FORMAT:
            raise _fail("format", f"{self.format!r} is not {FORMAT!r}")
        if not _NAME.match(self.name):
            raise _fail("name", f"{self.name!r} must match {_NAME.pattern}")
        if not _VERSION.match(self.version):
            raise _fail("version", f"{self.version!r} must be a decimal number string")
        for enum_field, enum in (("task", Task), ("stage", Stage), ("output_semantics", OutputSemantics)):
            value = getattr(self, enum_field)
            try:
                object.__setattr__(self, enum_field, enum(value))
            except ValueError:
                raise _fail(enum_field, f"{value!r} is not one of {[e.value for e in enum]}") from None
        if not self.framework or not self.label or not self.owner:
            raise _fail("framework/label/owner", "must be non-empty")
        if not self.inputs or not self.outputs:
            raise _fail("inputs/outputs", "a model needs at least one input and one output")
        for what, specs in (("inputs", self.inputs), ("outputs", self.outputs)):
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise _fail(what, f"duplicate tensor names {names}")
        if len(set(self.feature_names)) != len(self.feature_names) or not all(self.feature_names):
            raise _fail("feature_names", "must be unique non-empty strings")
        width = self.inputs[0].shape[-1] if self.inputs[0].shape else None
        if self.feature_names and width != len(self.feature_names):
            raise _fail("feature_names", f"{len(self.feature_names)} names for input width {width}")
        if not _FILE.match(self.onnx_file):
            raise _fail("onnx_file", f"{self.onnx_file!r} must be a plain file name")
        if not _SHA256.match(self.onnx_sha256):
            raise _fail("onnx_sha256", "must be 64 lowercase hex digits")
        if any(not isinstance(k, str) or not isinstance(v, str) for k, v in self.segment.items()):
            raise _fail("segment", "keys and values must be strings")
        object.__setattr__(self, "segment", _readonly(self.segment))

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.onnx_sha256))

    @property
    def key(self) -> tuple[str, str]:
        """``(name, version)``."""
        return (self.name, self.version)

    def validate_serving(self) -> None:
        """Check the serving conventions of the module docstring (``ManifestError`` naming the first breach)."""
        if len(self.inputs) != 1 or len(self.outputs) != 1:
            raise _fail("inputs/outputs", "serving needs exactly one input and one output")
        x, y = self.inputs[0], self.outputs[0]
        if x.name != "features" or x.dtype != "float32" or len(x.shape) != 2 or x.shape[0] != -1:
            raise _fail("inputs", f"expected features float32 [-1, F], got {x}")
        if self.output_semantics is OutputSemantics.EMBEDDING:
            if y.name != "embedding" or y.dtype != "float32" or len(y.shape) != 2 or y.shape[0] != -1:
                raise _fail("outputs", f"expected embedding float32 [-1, D], got {y}")
        elif y.name != "score" or y.dtype != "float32" or y.shape != (-1,):
            raise _fail("outputs", f"expected score float32 [-1], got {y}")

    # -- JSON ------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: keys in field order (``format`` first), mappings sorted, times as ``...Z`` text."""
        out: dict[str, Any] = _jsonable(self)
        return out

    def to_json(self) -> str:
        """Indented JSON with a trailing newline; equal manifests give equal text."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> Self:
        """Parse a dict as read from JSON (strict; see the module docstring)."""
        manifest: Self = _decode(data, cls, "manifest")
        return manifest

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        """Parse manifest JSON (``ManifestError`` when malformed)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    # -- files -----------------------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``<directory>/manifest.json`` atomically (write a temp file, then rename); returns its path."""
        path = Path(directory) / MANIFEST_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(self.to_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Self:
        """Read ``<directory>/manifest.json`` (``FileNotFoundError`` if absent, ``ManifestError`` if malformed)."""
        return cls.from_json((Path(directory) / MANIFEST_FILE).read_bytes())

    def onnx_path(self, directory: str | os.PathLike[str]) -> Path:
        return Path(directory) / self.onnx_file

    def check_artifact(self, directory: str | os.PathLike[str]) -> Path:
        """Return the ONNX file's path after checking it exists and its SHA-256 matches (``ManifestError``)."""
        path = self.onnx_path(directory)
        if not path.is_file():
            raise ManifestError(f"{self.name}/{self.version}: artifact {path} is missing")
        digest = sha256_file(path)
        if digest != self.onnx_sha256:
            raise ManifestError(f"{self.name}/{self.version}: {path} has SHA-256 {digest}, expected {self.onnx_sha256}")
        return path


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Lowercase hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save(manifest: Manifest, directory: str | os.PathLike[str]) -> Path:
    """Same as ``manifest.save(directory)``."""
    return manifest.save(directory)


def load(directory: str | os.PathLike[str]) -> Manifest:
    """Same as ``Manifest.load(directory)``."""
    return Manifest.load(directory)


# -- strict parsing: driven by the dataclasses' type hints, so the JSON and the classes cannot drift apart -------


def _expect(value: Any, kind: type | tuple[type, ...], what: str, kind_name: str) -> Any:
    # bool is an int subclass: refuse it wherever a number is wanted (no manifest field is a bool).
    if isinstance(value, bool) or not isinstance(value, kind):
        raise _fail(what, f"expected {kind_name}, got {type(value).__name__}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a manifest dataclass (resolving them is slow; the classes never change)."""
    return get_type_hints(cls)


def _decode_object(value: Any, cls: type, what: str) -> Any:
    obj = _expect(value, dict, what, "an object")
    names = [f.name for f in fields(cls)]
    missing, unknown = [n for n in names if n not in obj], sorted(set(obj) - set(names))
    if missing or unknown:
        raise _fail(what, f"missing keys {missing}" if missing else f"unknown keys {unknown}")
    hints = _hints(cls)
    return cls(**{n: _decode(obj[n], hints[n], f"{what}.{n}" if what != "manifest" else n) for n in names})


def _decode_time(value: Any, what: str) -> datetime:
    try:
        t = datetime.fromisoformat(_expect(value, str, what, "an ISO-8601 time"))
    except ValueError as exc:
        raise _fail(what, str(exc)) from None
    if t.tzinfo is None:
        raise _fail(what, "must carry a timezone (e.g. a trailing Z)")
    return t


def _decode(value: Any, hint: Any, what: str) -> Any:
    """Check and convert one JSON value to the Python type ``hint`` (``ManifestError`` naming ``what``)."""
    origin, args = get_origin(hint), get_args(hint)
    if isinstance(hint, type) and is_dataclass(hint):
        return _decode_object(value, hint, what)
    if origin is tuple:  # tuple[X, ...]
        items = _expect(value, list, what, "a list")
        return tuple(_decode(v, args[0], f"{what}[{i}]") for i, v in enumerate(items))
    if origin is Mapping:  # Mapping[str, X]
        obj = _expect(value, dict, what, "an object")
        return {k: _decode(v, args[1], f"{what}.{k}") for k, v in obj.items()}
    if hint is datetime:
        return _decode_time(value, what)
    if hint is float:
        return float(_expect(value, (int, float), what, "a number"))
    if hint in (int, str) or (isinstance(hint, type) and issubclass(hint, Enum)):  # constructors check enum values
        kind = int if hint is int else str
        return _expect(value, kind, what, kind.__name__)
    raise TypeError(f"no JSON decoder for {hint!r}")  # a programming error, not a bad manifest
