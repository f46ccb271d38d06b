"""The artifact store: published packages on a local directory, content-addressed, versions immutable.

Layout under the store's root::

    blobs/sha256/<digest>.tar       the package archive, named by the SHA-256 of its bytes (models.package)
    packages/<digest>/              the archive unpacked, read-only (what loaders read)
    refs/<name>/<version>           the digest that ``name@version`` is, one line

Rules:

1. Publishing writes the blob, then the unpacked directory, then the ref; each is written under a temporary name
   and renamed, and the ref is created with ``link(2)``, which fails if it exists. So a ref on disk always points
   at a complete, checked package, and two publishers of the same ``name@version`` cannot both win: the loser gets
   :class:`~models.package.PackageExistsError` and nothing changes.
2. Names and versions are checked (:mod:`models.ids`) before they become path components, so ``../x`` or
   ``1/../../etc`` never reach the file system.
3. Reading re-checks: :meth:`ArtifactStore.get` verifies the blob's digest against its ref and the ONNX file against
   the manifest (:class:`~models.package.ChecksumMismatchError` when a byte on disk changed since publishing).
4. Equal content is stored once: two versions with byte-identical archives share a blob.

Only a local directory is supported: remote object stores (fsspec URLs) are not a dependency of the product.

Thread-safety: every method may be called from any thread and any process sharing the directory.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from models.ids import ModelId, check_name, check_version, version_key
from models.manifest import MANIFEST_FILE, Manifest, ManifestError, sha256_file
from models.package import (
    ChecksumMismatchError,
    CorruptPackageError,
    Package,
    PackageError,
    PackageExistsError,
    pack_directory,
    unpack,
)

__all__ = ["ArtifactStore", "Published", "read_archive"]

_DIGEST_LEN: Final = 64
_MANIFEST_CACHE: Final = 1024  # parsed manifests kept per store (a few KiB each)


@dataclass(frozen=True)
class Published:
    """What :meth:`ArtifactStore.publish` stored: the version and its package digest."""

    id: ModelId
    digest: str
    size: int


class ArtifactStore:
    """Packages under ``root`` (see the module docstring for the layout and the rules)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        # Parsed manifests by package digest, with the bytes they were parsed from: a version that loads again
        # (swapped back, rolled back) skips the parse (~0.8 ms of interpreted code with the GIL held) when the
        # file still holds those very bytes. Every read still reads the file and still checks the digests.
        self._manifests: dict[str, tuple[bytes, Manifest]] = {}

    # -- paths -------------------------------------------------------------------------------------------------
    def _blob(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / f"{digest}.tar"

    def _unpacked(self, digest: str) -> Path:
        return self.root / "packages" / digest

    def _ref(self, name: str, version: str) -> Path:
        return self.root / "refs" / check_name(name) / check_version(version)

    # -- writing -----------------------------------------------------------------------------------------------
    def publish(self, source: str | os.PathLike[str] | bytes) -> Published:
        """Publish a package: an archive's bytes, a ``.tar`` file, or a model directory to pack.

        Raises :class:`PackageError` (corrupt archive, checksum mismatch, bad manifest) or
        :class:`PackageExistsError`; in both cases the store is unchanged.
        """
        archive = read_archive(source)
        digest = hashlib.sha256(archive).hexdigest()
        with tempfile.TemporaryDirectory(prefix=".publish.", dir=self._tmpdir()) as tmp:
            package = unpack(archive, Path(tmp) / "pkg")  # every check, before anything is stored
            ref = self._ref(package.manifest.name, package.manifest.version)
            if ref.exists():
                raise PackageExistsError(f"{package.id} is already published (versions are immutable)")
            self._write_blob(digest, archive, Path(tmp))
            target = self._unpacked(digest)
            if not target.is_dir():
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(package.directory, target)
                except OSError:
                    if not target.is_dir():  # a concurrent publisher of equal bytes got there first: fine
                        raise
            ref.parent.mkdir(parents=True, exist_ok=True)
            line = Path(tmp) / "ref"
            line.write_text(digest + "\n", encoding="ascii")
            try:
                os.link(line, ref)
            except FileExistsError:
                raise PackageExistsError(f"{package.id} is already published (versions are immutable)") from None
        return Published(package.id, digest, len(archive))

    def _tmpdir(self) -> Path:
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_blob(self, digest: str, archive: bytes, tmp: Path) -> None:
        blob = self._blob(digest)
        if blob.is_file():
            return
        blob.parent.mkdir(parents=True, exist_ok=True)
        staged = tmp / "blob"
        staged.write_bytes(archive)
        os.replace(staged, blob)

    # -- validation reports ------------------------------------------------------------------------------------
    def save_report(self, name: str, version: str, report_json: str) -> Path:
        """Keep the validation report of ``name@version`` beside its ref (``reports/<name>/<version>.json``)."""
        self.digest(name, version)  # published, and the names are safe
        path = self.root / "reports" / name / f"{version}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_name(f".{path.name}.tmp")
        staged.write_text(report_json, encoding="utf-8")
        os.replace(staged, path)
        return path

    def report(self, name: str, version: str) -> str | None:
        """The saved validation report of ``name@version`` (JSON text), or ``None``."""
        path = self.root / "reports" / check_name(name) / f"{check_version(version)}.json"
        return path.read_text(encoding="utf-8") if path.is_file() else None

    # -- reading -----------------------------------------------------------------------------------------------
    def digest(self, name: str, version: str) -> str:
        """The package digest of ``name@version`` (``KeyError`` if it is not published)."""
        try:
            digest = self._ref(name, version).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise KeyError(f"{name}@{version} is not published") from None
        if len(digest) != _DIGEST_LEN or any(c not in "0123456789abcdef" for c in digest):
            raise CorruptPackageError(f"{name}@{version}: ref holds {digest!r}, not a SHA-256")
        return digest

    def get(self, name: str, version: str) -> Package:
        """The checked package of ``name@version`` (rule 3); ``KeyError`` if it is not published."""
        digest = self.digest(name, version)
        directory = self._unpacked(digest)
        blob = self._blob(digest)
        if not directory.is_dir():  # unpacked copy missing (e.g. cleaned): rebuild it from the blob
            with tempfile.TemporaryDirectory(prefix=".unpack.", dir=self._tmpdir()) as tmp:
                package = unpack(self._read_blob(blob, digest), Path(tmp) / "pkg")
                try:
                    os.rename(package.directory, directory)
                except OSError:
                    if not directory.is_dir():
                        raise
        elif blob.is_file() and sha256_file(blob) != digest:
            raise ChecksumMismatchError(f"{name}@{version}: blob {blob.name} no longer has SHA-256 {digest}")
        package = Package(self._manifest(directory, digest), directory, digest)
        if package.id != ModelId(name, version):
            raise CorruptPackageError(f"ref {name}@{version} points at a package of {package.id}")
        actual = sha256_file(package.onnx_path)
        if actual != package.manifest.onnx_sha256:
            raise ChecksumMismatchError(
                f"{package.id}: {package.onnx_path} has SHA-256 {actual}, the manifest says "
                f"{package.manifest.onnx_sha256}"
            )
        return package

    def _manifest(self, directory: Path, digest: str) -> Manifest:
        """The manifest of the unpacked package ``directory``, parsed once per content (see ``_manifests``)."""
        try:
            raw = (directory / MANIFEST_FILE).read_bytes()
        except FileNotFoundError as exc:
            raise CorruptPackageError(f"package {directory.name[:12]}: {exc}") from exc
        cached = self._manifests.get(digest)
        if cached is not None and cached[0] == raw:
            return cached[1]
        try:
            manifest = Manifest.from_json(raw)
        except ManifestError as exc:
            raise CorruptPackageError(f"package {directory.name[:12]}: {exc}") from exc
        if len(self._manifests) >= _MANIFEST_CACHE:
            self._manifests.clear()
        self._manifests[digest] = (raw, manifest)
        return manifest

    def _read_blob(self, blob: Path, digest: str) -> bytes:
        try:
            archive = blob.read_bytes()
        except FileNotFoundError:
            raise CorruptPackageError(f"blob {digest[:12]} is missing from the store") from None
        if hashlib.sha256(archive).hexdigest() != digest:
            raise ChecksumMismatchError(f"blob {blob.name} no longer has SHA-256 {digest}")
        return archive

    def names(self) -> tuple[str, ...]:
        refs = self.root / "refs"
        return tuple(sorted(p.name for p in refs.iterdir() if p.is_dir())) if refs.is_dir() else ()

    def versions(self, name: str) -> tuple[str, ...]:
        """Published versions of ``name``, oldest first (numeric order)."""
        directory = self.root / "refs" / check_name(name)
        if not directory.is_dir():
            return ()
        return tuple(sorted((p.name for p in directory.iterdir() if p.name.isdigit()), key=version_key))

    def latest(self, name: str) -> str | None:
        versions = self.versions(name)
        return versions[-1] if versions else None


def read_archive(source: str | os.PathLike[str] | bytes) -> bytes:
    """A package archive from its bytes, a ``.tar`` file, or a model directory to pack."""
    if isinstance(source, bytes):
        return source
    if Path(source).is_dir():
        return pack_directory(source)
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise PackageError(f"cannot read package {source}: {exc}") from exc
