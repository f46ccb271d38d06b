"""``ModelRuntime``: one ONNX model, scored into caller-owned buffers, from any number of threads.

Contract
========
* **Thread-safety.** :meth:`ModelRuntime.score` and :meth:`ModelRuntime.run` may be called from
  any number of threads at once. Each thread gets its own ONNX Runtime bindings; the session
  itself is shared (ONNX Runtime's ``Run`` is thread-safe and releases the GIL while it computes).
* **Buffers.** The caller owns every buffer it passes. Inputs are read in place (their address is
  bound, nothing is copied) and outputs are written in place. Both must stay alive and unchanged
  until the call returns. A binding kept for an address is run only by a call whose own arrays sit
  at that address with that shape, so memory freed and reused by another array is read as that
  array.
* **Binding cache.** Re-binding an ``IOBinding`` costs more than the bind calls: the next run is
  slower too, by more for larger inputs (bench MLP, measured: +8 µs at 1 row, +14 at 16, +30 at
  256, where a binding bound once runs at 6, 24 and 294 µs). A thread that passes the *same array
  objects* again reuses the current binding; a new array is validated in full, and each thread keeps
  up to 32 bindings by the memory they point at (input and output address and shape), so callers
  that cycle through a few buffers (the JVM bridge's arena slots and staging rows, the Py4J rings)
  never rebind, and no copy is made. The NaN/inf check runs on every call, since the contents
  change between calls.
* **Validation** (every call, before ONNX Runtime sees the data), each failure a typed
  :class:`gateway.errors.InvalidInputError`: names match the signature; dtype; rank and fixed
  dimensions; C-contiguity; native byte order (ONNX Runtime reads raw memory and silently
  mis-scores big-endian floats); batch between 1 and ``max_batch``; all inputs share the batch;
  NaN/inf per :class:`gateway.options.NonFinitePolicy`. Output buffers are checked the same way
  and must be writeable.
* **Closing.** :meth:`close` must not race with calls in flight (ONNX Runtime crashes if a session
  is released during ``Run``, onnxruntime#21812); the model lifecycle hands out handles that make
  this impossible. A call after ``close`` raises :class:`gateway.errors.UnavailableError`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from math import isfinite
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from gateway.errors import (
    BatchSizeError,
    InputDtypeError,
    InputLayoutError,
    InputNameError,
    InputShapeError,
    ModelExecutionError,
    ModelLoadError,
    NonFiniteInputError,
    UnavailableError,
)
from gateway.options import ExecutionMode, GraphOptimization, NonFinitePolicy, RuntimeOptions

__all__ = ["ModelRuntime", "TensorSignature", "session_options"]

_ORT_TYPES: dict[str, np.dtype[Any]] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(double)": np.dtype(np.float64),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(bool)": np.dtype(np.bool_),
}
_FLOAT_KINDS = "f"

_GRAPH_LEVELS = {
    GraphOptimization.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class TensorSignature:
    """One input or output as the ONNX graph declares it.

    ``dims`` holds ``None`` for a symbolic dimension. The first dimension is the batch; a model
    whose other dimensions are all fixed can be scored into preallocated output buffers.
    """

    name: str
    dtype: np.dtype[Any]
    dims: tuple[int | None, ...]

    @property
    def fixed_tail(self) -> bool:
        """True when every dimension after the batch is fixed."""
        return all(d is not None for d in self.dims[1:])

    def shape_for(self, batch: int) -> tuple[int, ...]:
        """The concrete shape for ``batch`` rows (requires :attr:`fixed_tail`)."""
        return (batch, *(int(d) for d in self.dims[1:] if d is not None))

    def describe(self) -> str:
        dims = ", ".join("batch" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(self.dims))
        return f"{self.name}: {self.dtype.name}[{dims}]"


def _signature(args: list[Any]) -> tuple[TensorSignature, ...]:
    specs = []
    for arg in args:
        dtype = _ORT_TYPES.get(arg.type)
        if dtype is None:
            raise ValueError(f"tensor {arg.name!r} has unsupported type {arg.type}")
        dims = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
        specs.append(TensorSignature(arg.name, dtype, dims))
    return tuple(specs)


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    """The ONNX Runtime ``SessionOptions`` that ``options`` describe (also used by the perf floor)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.graph_optimization_level = _GRAPH_LEVELS[options.graph_optimization]
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if options.execution_mode is ExecutionMode.PARALLEL
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    spin = "1" if options.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    for key, value in options.session_config.items():
        so.add_session_config_entry(key, value)
    so.log_severity_level = 3
    return so


#: Bindings a thread keeps per runtime, one per (input, output) memory it scores from and into.
_BINDINGS_PER_THREAD = 32

_BindingKey = tuple[int, tuple[int, ...], int, tuple[int, ...]]


class _ThreadState:
    """Per-thread bindings and the arrays the current one points at (see "Binding cache")."""

    __slots__ = ("binding", "bindings", "general", "key", "out", "out_shape", "session", "x", "x_flat", "x_shape")

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session = session
        #: The binding of the current (x, out) and its key; ``None`` until the first call binds.
        self.binding: ort.IOBinding | None = None
        self.key: _BindingKey | None = None
        #: Bindings by the memory they point at: input address and shape, output address and shape.
        self.bindings: dict[_BindingKey, ort.IOBinding] = {}
        # The general path's binding, made on its first use: most threads only ever score(), and a thread's first
        # call on a new version pays for each binding it makes (right after a swap, on every serving thread).
        self.general: ort.IOBinding | None = None
        self.x: np.ndarray[Any, Any] | None = None
        self.x_shape: tuple[int, ...] = ()
        self.x_flat: np.ndarray[Any, Any] | None = None
        self.out: np.ndarray[Any, Any] | None = None
        self.out_shape: tuple[int, ...] = ()

    def bind(self, input_name: str, x: np.ndarray[Any, Any], spec: TensorSignature, out: np.ndarray[Any, Any]) -> None:
        """Make the binding of ``x`` and ``out`` current: the one already bound to that memory, else a new one (or,
        with :data:`_BINDINGS_PER_THREAD` kept, the oldest one rebound)."""
        key = (x.ctypes.data, x.shape, out.ctypes.data, out.shape)
        binding = self.bindings.get(key)
        if binding is None:
            if len(self.bindings) < _BINDINGS_PER_THREAD:
                binding = self.session.io_binding()
            else:
                binding = self.bindings.pop(next(iter(self.bindings)))
            binding.bind_input(input_name, "cpu", 0, np.float32, x.shape, x.ctypes.data)
            binding.bind_output(spec.name, "cpu", 0, spec.dtype, out.shape, out.ctypes.data)
            self.bindings[key] = binding
        self.binding, self.key = binding, key

    def forget(self) -> None:
        """After a failed run: drop the current binding (it may be half-updated) and bind afresh next call."""
        if self.key is not None:
            self.bindings.pop(self.key, None)
        self.binding = self.key = self.x = self.out = None


class ModelRuntime:
    """A loaded ONNX model with strict input checking and zero-copy scoring. See module doc."""

    def __init__(self, session: ort.InferenceSession, name: str, options: RuntimeOptions, version: str = "") -> None:
        self.name = name
        #: The version this runtime serves ("" when loaded outside a versioned store).
        self.version = version
        self.options = options
        self._session: ort.InferenceSession | None = session
        self.inputs = _signature(session.get_inputs())
        self.outputs = _signature(session.get_outputs())
        self._local = threading.local()
        self._f32 = np.dtype(np.float32)
        single = len(self.inputs) == 1 and len(self.outputs) == 1
        self._fast = (
            single
            and self.inputs[0].dtype == self._f32
            and self.outputs[0].fixed_tail
            and len(self.inputs[0].dims) >= 1
        )

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | bytes,
        *,
        name: str | None = None,
        version: str = "",
        options: RuntimeOptions | None = None,
    ) -> ModelRuntime:
        """Load an ONNX model from a path or from serialized bytes.

        Raises :class:`ModelLoadError` for a missing or corrupt file, an unsupported tensor type,
        or an execution provider this host does not have.
        """
        options = options or RuntimeOptions()
        if name is None:
            name = Path(model).stem if not isinstance(model, bytes) else "model"
        available = set(ort.get_available_providers())
        wanted = [p if isinstance(p, str) else p[0] for p in options.providers]
        missing = [p for p in wanted if p not in available]
        if missing:
            raise ModelLoadError(
                name, f"execution provider(s) {missing} not available here (available: {sorted(available)})"
            )
        source: str | bytes
        if isinstance(model, bytes):
            source = model
        else:
            path = Path(model)
            if not path.is_file():
                raise ModelLoadError(name, f"no model file at {path}")
            source = str(path)
        try:
            session = ort.InferenceSession(
                source,
                sess_options=session_options(options),
                providers=[p if isinstance(p, str) else (p[0], dict(p[1])) for p in options.providers],
            )
        except Exception as exc:  # ONNX Runtime raises its own pybind exception types
            raise ModelLoadError(name, f"ONNX Runtime rejected the model: {exc}") from exc
        try:
            return cls(session, name, options, version)
        except ValueError as exc:
            raise ModelLoadError(name, str(exc)) from exc

    # ------------------------------------------------------------------ scoring
    def score(self, x: np.ndarray[Any, Any], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        """Score ``x`` (rows x features) into ``out`` and return ``out``.

        The hot path for the usual ranking model: one float32 input, one output. ``out`` is
        written in place; when omitted, a new array is returned.
        """
        session = self._session
        if session is None:
            raise UnavailableError(f"model {self.name!r} is closed")
        if not self._fast:
            key = self.inputs[0].name if len(self.inputs) == 1 else "*"
            raise InputNameError(
                self.name, key, "score() needs one float32 input and one fixed-shape output; use run()"
            )
        try:
            st: _ThreadState = self._local.state
        except AttributeError:
            st = self._local.state = _ThreadState(session)
        # 1. Input: revalidate only when this thread passes a different array.
        rebind = False
        if x is not st.x or x.shape != st.x_shape or x.dtype is not self._f32 or not x.flags.c_contiguous:
            self._check_input(self.inputs[0], x, None)
            st.x, st.x_shape, st.x_flat = x, x.shape, x.reshape(-1)
            rebind = True
        batch = st.x_shape[0]
        # 2. NaN/inf: one allocation-free BLAS dot per call (see _has_nonfinite).
        flat = st.x_flat
        assert flat is not None
        try:
            screen = flat.dot(flat)
        except RuntimeWarning:  # overflow of a huge finite value, with warnings set to raise
            screen = np.float32(np.inf)
        if not isfinite(screen):
            replaced = self._nonfinite(self.inputs[0], x)
            if replaced is not None:
                return self._run_general(
                    {self.inputs[0].name: replaced}, None if out is None else {self.outputs[0].name: out}
                )[self.outputs[0].name]
        # 3. Output: same caching rule as the input.
        spec = self.outputs[0]
        if out is None:
            out = np.empty(spec.shape_for(batch), dtype=spec.dtype)
        if out is not st.out or out.shape != st.out_shape or out.shape[0] != batch:
            self._check_output(spec, out, batch)
            st.out, st.out_shape = out, out.shape
            rebind = True
        # 4. The binding of this memory (see "Binding cache"): rebinding one costs more than the checks.
        if rebind:  # always on a thread's first call: st.x is None then
            st.bind(self.inputs[0].name, x, spec, out)
        try:
            session.run_with_iobinding(st.binding)
        except Exception as exc:
            st.forget()
            raise ModelExecutionError(self.name, str(exc)) from exc
        return out

    def run(
        self,
        inputs: Mapping[str, np.ndarray[Any, Any]],
        outputs: Mapping[str, np.ndarray[Any, Any]] | None = None,
    ) -> dict[str, np.ndarray[Any, Any]]:
        """Run the model on named inputs; write into the given output buffers where supplied.

        Returns every output by name: the caller's buffer where one was passed, otherwise a new
        array. Slower than :meth:`score` (binds every call); for multi-input models and admin use.
        """
        if self._session is None:
            raise UnavailableError(f"model {self.name!r} is closed")
        batch = self._check_inputs(inputs)
        prepared: dict[str, np.ndarray[Any, Any]] = {}
        for spec in self.inputs:
            arr = inputs[spec.name]
            if _has_nonfinite(arr):
                replaced = self._nonfinite(spec, arr)
                prepared[spec.name] = arr if replaced is None else replaced
            else:
                prepared[spec.name] = arr
        outs = dict(outputs or {})
        for name, buf in outs.items():
            spec = self._output(name)
            self._check_output(spec, buf, batch)
        return self._run_general(prepared, outs)

    def close(self) -> None:
        """Release the session. Must not race with calls in flight (see module doc)."""
        self._session = None
        self._local = threading.local()

    @property
    def closed(self) -> bool:
        return self._session is None

    def __repr__(self) -> str:
        sig = "; ".join(s.describe() for s in self.inputs) + " -> " + "; ".join(s.describe() for s in self.outputs)
        return f"ModelRuntime({self.name!r}, {sig})"

    # ------------------------------------------------------------------ internals
    def _run_general(
        self, inputs: Mapping[str, np.ndarray[Any, Any]], outputs: Mapping[str, np.ndarray[Any, Any]] | None
    ) -> dict[str, np.ndarray[Any, Any]]:
        session = self._session
        if session is None:
            raise UnavailableError(f"model {self.name!r} is closed")
        try:
            st: _ThreadState = self._local.state
        except AttributeError:
            st = self._local.state = _ThreadState(session)
        binding = st.general
        if binding is None:
            binding = st.general = session.io_binding()
        batch = next(iter(inputs.values())).shape[0]
        for name, arr in inputs.items():
            binding.bind_input(name, "cpu", 0, arr.dtype, arr.shape, arr.ctypes.data)
        result: dict[str, np.ndarray[Any, Any]] = {}
        pending: list[str] = []
        for spec in self.outputs:
            buf = None if outputs is None else outputs.get(spec.name)
            if buf is None and spec.fixed_tail:
                buf = np.empty(spec.shape_for(batch), dtype=spec.dtype)
            if buf is None:
                binding.bind_output(spec.name, "cpu")
                pending.append(spec.name)
            else:
                binding.bind_output(spec.name, "cpu", 0, spec.dtype, buf.shape, buf.ctypes.data)
                result[spec.name] = buf
        try:
            session.run_with_iobinding(binding)
        except Exception as exc:
            raise ModelExecutionError(self.name, str(exc)) from exc
        finally:
            # Drop references to caller memory held by the binding's OrtValues.
            binding.clear_binding_inputs()
        if pending:
            copied = binding.copy_outputs_to_cpu()
            names = [s.name for s in self.outputs]
            for name in pending:
                result[name] = copied[names.index(name)]
        binding.clear_binding_outputs()
        return {s.name: result[s.name] for s in self.outputs}

    def _output(self, name: str) -> TensorSignature:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise InputNameError(self.name, name, f"no such output; outputs are {[s.name for s in self.outputs]}")

    def _check_inputs(self, inputs: Mapping[str, np.ndarray[Any, Any]]) -> int:
        names = {s.name for s in self.inputs}
        for name in inputs:
            if name not in names:
                raise InputNameError(self.name, name, f"no such input; inputs are {sorted(names)}")
        batch: int | None = None
        for spec in self.inputs:
            if spec.name not in inputs:
                raise InputNameError(self.name, spec.name, "missing")
            arr = inputs[spec.name]
            self._check_input(spec, arr, batch)
            batch = arr.shape[0]
        assert batch is not None
        return batch

    def _check_input(self, spec: TensorSignature, arr: Any, batch: int | None) -> None:
        """Full validation of one input array; raises the precise error."""
        if not isinstance(arr, np.ndarray):
            raise InputDtypeError(self.name, spec.name, f"expected a numpy array, got {type(arr).__name__}")
        self._check_array(spec, arr, "input")
        rows = arr.shape[0]
        if rows == 0:
            raise BatchSizeError(self.name, spec.name, "empty batch (0 rows)")
        if rows > self.options.max_batch:
            raise BatchSizeError(
                self.name, spec.name, f"batch of {rows} rows exceeds max_batch {self.options.max_batch}"
            )
        if batch is not None and rows != batch:
            raise InputShapeError(self.name, spec.name, f"batch of {rows} rows differs from other inputs' {batch}")

    def _check_output(self, spec: TensorSignature, arr: Any, batch: int) -> None:
        if not isinstance(arr, np.ndarray):
            raise InputDtypeError(
                self.name, spec.name, f"output buffer must be a numpy array, got {type(arr).__name__}"
            )
        self._check_array(spec, arr, "output buffer")
        if not arr.flags.writeable:
            raise InputLayoutError(self.name, spec.name, "output buffer is read-only")
        want = spec.shape_for(batch)
        if arr.shape != want:
            raise InputShapeError(self.name, spec.name, f"output buffer shape {arr.shape}, expected {want}")

    def _check_array(self, spec: TensorSignature, arr: np.ndarray[Any, Any], what: str) -> None:
        dtype = arr.dtype
        if not dtype.isnative:
            raise InputLayoutError(
                self.name,
                spec.name,
                f"{what} is in non-native byte order ({dtype.str}); ONNX Runtime would read it as garbage. "
                f"Convert with arr.astype(arr.dtype.newbyteorder('='))",
            )
        if dtype != spec.dtype:
            raise InputDtypeError(self.name, spec.name, f"{what} has dtype {dtype.name}, expected {spec.dtype.name}")
        if arr.ndim != len(spec.dims):
            raise InputShapeError(
                self.name,
                spec.name,
                f"{what} has rank {arr.ndim} (shape {arr.shape}), expected rank {len(spec.dims)} ({spec.describe()})",
            )
        for axis, (got, want) in enumerate(zip(arr.shape, spec.dims, strict=True)):
            if axis > 0 and want is not None and got != want:
                label = "feature count" if axis == arr.ndim - 1 else f"dimension {axis}"
                raise InputShapeError(
                    self.name, spec.name, f"{what} {label} is {got}, expected {want} ({spec.describe()})"
                )
        if not arr.flags.c_contiguous:
            raise InputLayoutError(
                self.name,
                spec.name,
                f"{what} is not C-contiguous (strides {arr.strides}); pass np.ascontiguousarray(x)",
            )

    def _nonfinite(self, spec: TensorSignature, arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
        """Apply the NaN/inf policy. Returns a cleaned copy, or None if ``arr`` was finite after all."""
        bad = ~np.isfinite(arr)
        count = int(bad.sum())
        if count == 0:
            return None
        if self.options.nonfinite is NonFinitePolicy.REJECT:
            where = np.argwhere(bad)[0].tolist()
            raise NonFiniteInputError(
                self.name, spec.name, f"{count} non-finite value(s) (NaN/inf), first at index {tuple(where)}"
            )
        cleaned = arr.copy()
        cleaned[bad] = self.options.nonfinite_replacement
        return cleaned


def _has_nonfinite(arr: np.ndarray[Any, Any]) -> bool:
    """Cheap screen for NaN/inf: may say True for finite data, never False for non-finite data.

    ``x . x`` is NaN or inf when any element is, with no allocation (one BLAS dot, ~1 µs for
    256 x 64 floats against ~3 µs for ``np.isfinite(x).all()``). It also overflows to inf for
    finite elements above ~1.8e19 (float32); the exact check that follows a True clears those.
    numpy reports that overflow as a RuntimeWarning (once per process under default filters);
    silencing it with ``np.errstate`` would cost ~1 µs on every call, more than the screen itself.
    """
    if arr.dtype.kind not in _FLOAT_KINDS or arr.size == 0:
        return False
    flat = arr.reshape(-1)
    try:
        return not isfinite(flat.dot(flat))
    except RuntimeWarning:  # overflow, with warnings set to raise: let the exact check decide
        return True
