"""The package: one immutable archive per model version, addressed by the SHA-256 of its bytes.

A package holds exactly three files, in this order, in an uncompressed POSIX tar::

    manifest.json    the manifest (models.manifest): signature, features, semantics, metrics, budget, fallback
    model.onnx       the ONNX graph (the manifest's ``onnx_file``; its SHA-256 is in the manifest)
    reference.npz    reference predictions: ``inputs`` float32 [n, F] and the trainer's ``expected`` outputs,
                     optionally ``labels`` [n] (0/1) for a calibration check

Rules:

1. :func:`pack` is deterministic: fixed member order, mtime 0, mode 0444, uid/gid 0, no user names. Equal files
   give equal bytes, so the archive's SHA-256 (the *package digest*) identifies the version's content.
2. :func:`unpack` trusts nothing: the archive must parse, hold regular files only, with the three names above
   (no directories, no links, no ``/``), each at most ``max_member_bytes``; the manifest must parse and
   the ONNX file must have the manifest's SHA-256. Each breach is a :class:`PackageError` subclass naming it.
3. A package directory is read-only once unpacked; the store never rewrites one.

Thread-safety: functions here keep no state; :class:`Package` values are immutable.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from models.ids import ModelId
from models.manifest import MANIFEST_FILE, Manifest, ManifestError, sha256_file

__all__ = [
    "REFERENCE_FILE",
    "ChecksumMismatchError",
    "CorruptPackageError",
    "Package",
    "PackageError",
    "PackageExistsError",
    "Reference",
    "pack",
    "pack_directory",
    "read_reference_inputs",
    "unpack",
    "write_reference",
]

REFERENCE_FILE: Final = "reference.npz"
DEFAULT_MAX_MEMBER_BYTES: Final = 2 << 30


class PackageError(ValueError):
    """A package is unusable; the message names the package and the problem."""


class CorruptPackageError(PackageError):
    """The archive does not parse, or holds members that a package may not hold."""


class ChecksumMismatchError(PackageError):
    """A file's SHA-256 differs from the one recorded for it (manifest or store)."""


class PackageExistsError(PackageError):
    """That ``name@version`` is already published; versions are immutable."""


@dataclass(frozen=True)
class Reference:
    """Reference predictions shipped in a package: ``expected`` is what the trainer computed on ``inputs``."""

    inputs: np.ndarray[Any, np.dtype[np.float32]]
    expected: np.ndarray[Any, np.dtype[np.float32]]
    labels: np.ndarray[Any, Any] | None = None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Reference:
        try:
            # Our own handle: numpy.load leaks the one it opens when the archive is damaged.
            with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
                inputs = np.ascontiguousarray(data["inputs"], dtype=np.float32)
                expected = np.ascontiguousarray(data["expected"], dtype=np.float32)
                labels = np.asarray(data["labels"]) if "labels" in data.files else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: truncated
            raise CorruptPackageError(f"reference predictions {path} are unreadable: {exc}") from exc
        if inputs.ndim != 2 or len(expected) != len(inputs) or len(inputs) == 0:
            raise CorruptPackageError(
                f"reference predictions {path}: inputs {inputs.shape} and expected {expected.shape} do not pair up"
            )
        if labels is not None and len(labels) != len(inputs):
            raise CorruptPackageError(f"reference predictions {path}: {len(labels)} labels for {len(inputs)} rows")
        return cls(inputs, expected, labels)


@dataclass(frozen=True)
class Package:
    """An unpacked, checked package: its manifest, the directory holding its files and its digest."""

    manifest: Manifest
    directory: Path
    digest: str

    @property
    def id(self) -> ModelId:
        return ModelId(self.manifest.name, self.manifest.version)

    @property
    def onnx_path(self) -> Path:
        return self.manifest.onnx_path(self.directory)

    @property
    def reference_path(self) -> Path:
        return self.directory / REFERENCE_FILE

    @property
    def model_bytes(self) -> int:
        """Size of the ONNX file: a lower bound of what loading it costs in memory."""
        return self.onnx_path.stat().st_size

    def reference(self) -> Reference:
        return Reference.load(self.reference_path)

    def reference_inputs(self) -> np.ndarray[Any, np.dtype[np.float32]]:
        """The reference ``inputs`` rows alone, for warming a new version up (:func:`read_reference_inputs`)."""
        return read_reference_inputs(self.reference_path)


#: An ``.npy`` header as numpy writes it for a plain little- or big-endian 2-D array.
_NPY_HEADER = re.compile(
    rb"\{'descr': '([<>|=]f[48])', 'fortran_order': (True|False), 'shape': \((\d+), (\d+)\), \}\s*"
)
_ZIP_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # a zip local file header (30 bytes)


def read_reference_inputs(path: str | os.PathLike[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The ``inputs`` array of ``reference.npz``, read with a dozen Python steps in the usual case.

    A load warms a new version up in the serving process, next to the serving threads, and every interpreted step
    there holds the GIL they need: ``numpy.load`` of the archive is ~200 µs of ``zipfile`` and header parsing
    (``ast.literal_eval``), the largest GIL hold of a swap (traced with a sleeping probe thread). Here the file is
    read in one system call (GIL released) and, when ``inputs.npy`` is its first member, stored uncompressed with
    a plain 2-D float header (what :func:`write_reference` and ``numpy.savez`` write), viewed in place. Anything
    else goes through :meth:`Reference.load`, which also raises its errors. The CRC is not checked on the fast
    path: the parity gate reads the archive in full before a version may serve, and these rows only warm it up.
    """
    with open(path, "rb") as f:
        data = f.read()
    inputs = _stored_inputs(data)
    return inputs if inputs is not None else Reference.load(path).inputs


def _stored_inputs(data: bytes) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    """``inputs.npy`` as the first, uncompressed member of the zip ``data``, with a plain 2-D float header, as native
    float32; ``None`` for any other layout (or a truncated one)."""
    if len(data) < _ZIP_LOCAL.size:
        return None
    sig, _, flags, method, _, _, _, _, _, name_len, extra_len = _ZIP_LOCAL.unpack_from(data)
    name = data[_ZIP_LOCAL.size : _ZIP_LOCAL.size + name_len]
    if sig != b"PK\x03\x04" or method != 0 or flags & 1 or name != b"inputs.npy":
        return None  # another member first, compressed or encrypted
    start = _ZIP_LOCAL.size + name_len + extra_len
    if data[start : start + 8] != b"\x93NUMPY\x01\x00" or len(data) < start + 10:
        return None
    (header_len,) = struct.unpack_from("<H", data, start + 8)
    body = start + 10 + header_len
    m = _NPY_HEADER.fullmatch(data, start + 10, body)
    if m is None or m.group(2) != b"False":
        return None
    dtype = np.dtype(m.group(1).decode("ascii"))
    rows, cols = int(m.group(3)), int(m.group(4))
    if rows == 0 or body + rows * cols * dtype.itemsize > len(data):
        return None
    view = np.frombuffer(data, dtype, rows * cols, body).reshape(rows, cols)
    return np.ascontiguousarray(view, dtype=np.float32)  # native float32 (a copy only if it was not)


def write_reference(
    directory: str | os.PathLike[str],
    inputs: np.ndarray[Any, Any],
    expected: np.ndarray[Any, Any],
    labels: np.ndarray[Any, Any] | None = None,
) -> Path:
    """Write ``<directory>/reference.npz`` (temp file, then rename); returns its path."""
    path = Path(directory) / REFERENCE_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "inputs": np.ascontiguousarray(inputs, dtype=np.float32),
        "expected": np.ascontiguousarray(expected, dtype=np.float32),
    }
    if labels is not None:
        arrays["labels"] = np.asarray(labels)
    with open(tmp, "wb") as f:
        np.savez(f, allow_pickle=False, **arrays)
    os.replace(tmp, path)
    return path


def _member(name: str, payload: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(payload)


def pack(manifest: Manifest, onnx: bytes, reference: bytes) -> bytes:
    """The package archive for these three files (deterministic; see rule 1)."""
    digest = hashlib.sha256(onnx).hexdigest()
    if digest != manifest.onnx_sha256:
        raise ChecksumMismatchError(
            f"{manifest.name}@{manifest.version}: {manifest.onnx_file} has SHA-256 {digest}, "
            f"the manifest says {manifest.onnx_sha256}"
        )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in (
            (MANIFEST_FILE, manifest.to_json().encode("utf-8")),
            (manifest.onnx_file, onnx),
            (REFERENCE_FILE, reference),
        ):
            tar.addfile(*_member(name, payload))
    return buf.getvalue()


def pack_directory(directory: str | os.PathLike[str]) -> bytes:
    """Pack a model directory (``manifest.json``, the ONNX file, ``reference.npz``) as written by a trainer."""
    directory = Path(directory)
    try:
        manifest = Manifest.load(directory)
    except FileNotFoundError:
        raise PackageError(f"{directory}: no {MANIFEST_FILE}") from None
    except ManifestError as exc:
        raise PackageError(f"{directory}: {exc}") from exc
    onnx_path, reference = manifest.onnx_path(directory), directory / REFERENCE_FILE
    for path in (onnx_path, reference):
        if not path.is_file():
            raise PackageError(f"{manifest.name}@{manifest.version}: {path.name} is missing from {directory}")
    return pack(manifest, onnx_path.read_bytes(), reference.read_bytes())


def unpack(
    archive: bytes, destination: str | os.PathLike[str], *, max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
) -> Package:
    """Check ``archive`` (rule 2) and write its files into ``destination`` (created; must not exist)."""
    digest = hashlib.sha256(archive).hexdigest()
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    raise CorruptPackageError(f"package {digest[:12]}: member {info.name!r} is not a regular file")
                if "/" in info.name or "\\" in info.name or info.name in ("", ".", "..") or "\0" in info.name:
                    raise CorruptPackageError(f"package {digest[:12]}: member name {info.name!r} is not a plain name")
                if info.name in members:
                    raise CorruptPackageError(f"package {digest[:12]}: member {info.name!r} appears twice")
                if info.size > max_member_bytes:
                    raise CorruptPackageError(
                        f"package {digest[:12]}: member {info.name!r} is {info.size} bytes (limit {max_member_bytes})"
                    )
                f = tar.extractfile(info)
                assert f is not None  # a regular file
                members[info.name] = f.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CorruptPackageError(f"package {digest[:12]} is not a readable archive: {exc}") from exc
    if MANIFEST_FILE not in members:
        raise CorruptPackageError(f"package {digest[:12]} has no {MANIFEST_FILE} (members: {sorted(members)})")
    try:
        manifest = Manifest.from_json(members[MANIFEST_FILE])
    except ManifestError as exc:
        raise CorruptPackageError(f"package {digest[:12]}: {exc}") from exc
    label = f"{manifest.name}@{manifest.version}"
    expected = {MANIFEST_FILE, manifest.onnx_file, REFERENCE_FILE}
    if set(members) != expected:
        raise CorruptPackageError(f"{label}: members {sorted(members)}, expected {sorted(expected)}")
    onnx_digest = hashlib.sha256(members[manifest.onnx_file]).hexdigest()
    if onnx_digest != manifest.onnx_sha256:
        raise ChecksumMismatchError(
            f"{label}: {manifest.onnx_file} has SHA-256 {onnx_digest}, the manifest says {manifest.onnx_sha256}"
        )
    out = Path(destination)
    out.mkdir(parents=True)
    for name, payload in members.items():
        path = out / name
        path.write_bytes(payload)
        path.chmod(0o444)
    package = Package(manifest, out, digest)
    package.reference()  # parse it now: a corrupt reference is a corrupt package
    if sha256_file(package.onnx_path) != manifest.onnx_sha256:  # what landed on disk, not only what was read
        raise ChecksumMismatchError(f"{label}: {package.onnx_path} changed while unpacking")
    return package
