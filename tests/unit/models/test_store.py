"""Package format and artifact store: deterministic archives, content addressing, and every refusal."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
from lifecycle_builders import package_dir

from models.ids import ModelId, UnsafeNameError
from models.package import (
    ChecksumMismatchError,
    CorruptPackageError,
    PackageError,
    PackageExistsError,
    Reference,
    pack_directory,
    read_reference_inputs,
    write_reference,
)
from models.store import ArtifactStore


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pack_is_deterministic_and_the_digest_addresses_the_content(tmp_path: Path) -> None:
    a = pack_directory(package_dir(tmp_path / "a"))
    b = pack_directory(package_dir(tmp_path / "b"))
    assert a == b
    store = ArtifactStore(tmp_path / "store")
    first = store.publish(a)
    package = store.get("pctr", "1")
    assert package.id == ModelId("pctr", "1")
    assert package.digest == first.digest
    assert (tmp_path / "store" / "blobs" / "sha256" / f"{first.digest}.tar").read_bytes() == a
    assert package.reference().inputs.shape == (32, 8)


def test_versions_are_listed_numerically_and_equal_content_is_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    for version in ("2", "10", "1"):
        store.publish(package_dir(tmp_path / "src", version=version, seed=int(version)))
    assert store.names() == ("pctr",)
    assert store.versions("pctr") == ("1", "2", "10")
    assert store.latest("pctr") == "10"
    store.publish(package_dir(tmp_path / "src", name="pcvr"))
    blobs = list((tmp_path / "store" / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4  # pcvr@1 differs from pctr@1 by its manifest's name


def test_publishing_an_existing_version_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    store.publish(package_dir(tmp_path / "src", seed=1))
    before = _snapshot(tmp_path / "store" / "refs")
    with pytest.raises(PackageExistsError, match=r"pctr@1 is already published"):
        store.publish(package_dir(tmp_path / "other", seed=2))
    assert _snapshot(tmp_path / "store" / "refs") == before
    assert store.get("pctr", "1").digest == store.digest("pctr", "1")


def test_corrupt_archive_is_refused(tmp_path: Path) -> None:
    archive = pack_directory(package_dir(tmp_path / "src"))
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(CorruptPackageError, match=r"not a readable archive|members"):
        store.publish(archive[: len(archive) // 3])
    flipped = bytearray(archive)
    flipped[100] ^= 0xFF  # inside the first header: its checksum no longer holds
    with pytest.raises(CorruptPackageError, match="not a readable archive"):
        store.publish(bytes(flipped))
    with pytest.raises(CorruptPackageError, match="not a readable archive"):
        store.publish(b"this is not a tar file at all")
    assert store.names() == ()


def _tar(members: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def test_archive_members_that_escape_or_are_not_files_are_refused(tmp_path: Path) -> None:
    src = package_dir(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in src.iterdir()}
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(CorruptPackageError, match="not a plain name"):
        store.publish(_tar({**files, "../../evil": b"x"}))
    with pytest.raises(CorruptPackageError, match="not a regular file"):
        store.publish(_tar(files, link="manifest.link"))
    with pytest.raises(CorruptPackageError, match="members"):
        store.publish(_tar({**files, "extra.bin": b"x"}))
    assert not (tmp_path / "evil").exists()
    assert store.names() == ()


def test_checksum_mismatch_is_refused_at_publish_and_at_read(tmp_path: Path) -> None:
    src = package_dir(tmp_path / "src")
    (src / "model.onnx").write_bytes((src / "model.onnx").read_bytes() + b"\x00")
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        store.publish(src)
    good = package_dir(tmp_path / "good", version="2")
    published = store.publish(good)
    onnx_file = tmp_path / "store" / "packages" / published.digest / "model.onnx"
    onnx_file.chmod(0o644)
    onnx_file.write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError, match="SHA-256"):
        store.get("pctr", "2")


@pytest.mark.parametrize(
    ("name", "version"),
    [("../etc", "1"), ("pctr", "../../1"), ("pctr/x", "1"), ("pctr", "1/../2"), ("..", "1"), ("pctr", "")],
)
def test_path_traversal_in_names_or_versions_never_reaches_the_file_system(
    tmp_path: Path, name: str, version: str
) -> None:
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(UnsafeNameError):
        store.get(name, version)


def test_a_manifest_with_an_unsafe_name_cannot_be_packed(tmp_path: Path) -> None:
    src = package_dir(tmp_path / "src")
    text = (src / "manifest.json").read_text().replace('"name": "pctr"', '"name": "../pctr"')
    (src / "manifest.json").write_text(text)
    with pytest.raises(PackageError, match="name"):
        ArtifactStore(tmp_path / "store").publish(src)


def test_unpublished_version_is_a_key_error(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    with pytest.raises(KeyError, match="pctr@3 is not published"):
        store.get("pctr", "3")


def test_reference_reads_plain_compressed_and_fortran_ordered_archives(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    expected, labels = rng.random(5).astype(np.float32), np.array([0, 1, 1, 0, 1])
    (tmp_path / "plain").mkdir()
    path = write_reference(tmp_path / "plain", x, expected, labels)
    ref = Reference.load(path)
    with np.load(path) as data:
        for got, name in ((ref.inputs, "inputs"), (ref.expected, "expected"), (ref.labels, "labels")):
            assert got is not None
            assert got.dtype == data[name].dtype and np.array_equal(got, data[name])
            assert got.flags.writeable
    # Compressed members, and a Fortran-ordered array read back right.
    compressed = tmp_path / "compressed.npz"
    np.savez_compressed(compressed, inputs=x, expected=expected)
    assert Reference.load(compressed).inputs.tolist() == x.tolist()
    fortran = tmp_path / "fortran.npz"
    np.savez(fortran, inputs=np.asfortranarray(x), expected=expected)
    assert Reference.load(fortran).inputs.tolist() == x.tolist()


def test_reference_inputs_for_warm_up_read_every_layout_as_native_float32(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    expected = rng.random(6).astype(np.float32)
    (tmp_path / "plain").mkdir()
    layouts = {
        "plain": write_reference(tmp_path / "plain", x, expected),  # the fast path
        "compressed": tmp_path / "compressed.npz",
        "fortran": tmp_path / "fortran.npz",
        "big_endian": tmp_path / "big_endian.npz",
        "float64": tmp_path / "float64.npz",
        "inputs_not_first": tmp_path / "inputs_not_first.npz",
    }
    np.savez_compressed(layouts["compressed"], inputs=x, expected=expected)
    np.savez(layouts["fortran"], inputs=np.asfortranarray(x), expected=expected)
    np.savez(layouts["big_endian"], inputs=x.astype(">f4"), expected=expected)
    np.savez(layouts["float64"], inputs=x.astype(np.float64), expected=expected)
    np.savez(layouts["inputs_not_first"], expected=expected, inputs=x)
    for layout, path in layouts.items():
        got = read_reference_inputs(path)
        assert got.dtype == np.float32 and got.dtype.isnative and got.flags.c_contiguous, layout
        assert np.array_equal(got, x), layout


def test_reference_inputs_of_a_damaged_archive_are_a_corrupt_package(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    path = write_reference(tmp_path / "r", np.ones((4, 2), np.float32), np.zeros(4, np.float32))
    raw = path.read_bytes()
    for damaged in (raw[:60], raw[:200], b"not a zip", b""):  # cut inside the header, inside the data; no zip
        path.write_bytes(damaged)
        with pytest.raises(CorruptPackageError, match="unreadable"):
            read_reference_inputs(path)


def test_a_damaged_reference_is_a_corrupt_package(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    path = write_reference(tmp_path / "r", np.ones((4, 2), np.float32), np.zeros(4, np.float32))
    raw = path.read_bytes()
    flipped = bytearray(raw)
    flipped[100] ^= 0x01  # inside the inputs' data: the member's CRC-32 no longer holds
    path.write_bytes(bytes(flipped))
    with pytest.raises(CorruptPackageError, match="unreadable"):
        Reference.load(path)
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptPackageError, match="unreadable"):
        Reference.load(path)
    path.write_bytes(b"not a zip")
    with pytest.raises(CorruptPackageError, match="unreadable"):
        Reference.load(path)


def test_get_reparses_a_manifest_whose_bytes_changed(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    published = store.publish(package_dir(tmp_path / "src"))
    first = store.get("pctr", "1")
    assert store.get("pctr", "1").manifest is first.manifest  # same bytes: parsed once
    manifest = tmp_path / "store" / "packages" / published.digest / "manifest.json"
    manifest.chmod(0o644)
    manifest.write_text("{not json", encoding="utf-8")
    with pytest.raises(CorruptPackageError, match="not valid JSON"):
        store.get("pctr", "1")
    manifest.unlink()
    with pytest.raises(CorruptPackageError, match=r"manifest\.json"):
        store.get("pctr", "1")
