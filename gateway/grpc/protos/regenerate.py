"""Regenerate ``<name>_pb2.py`` and ``<name>_pb2.pyi`` from each ``<name>.proto`` here (``inference.proto``, the
KServe V2 protocol, and ``scoregate.proto``, the ad decision service).

Usage: ``python -m gateway.grpc.protos.regenerate [--check]``. ``--check`` writes nothing and
exits 1 when the committed files differ from what the proto and this grpcio-tools generate.

The stock protoc output is changed in one place (see :mod:`gateway.grpc.protos`): each file is
added to a private descriptor pool, exported as ``POOL``, instead of protobuf's default pool.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

__all__ = ["generate", "main"]

HERE = Path(__file__).resolve().parent
PROTOS = ("inference.proto", "scoregate.proto")
_DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL = (
    "# Scoregate: a private pool, not _descriptor_pool.Default(); see gateway/grpc/protos/__init__.py.\n"
    "POOL = _descriptor_pool.DescriptorPool()\n"
    "DESCRIPTOR = POOL.AddSerializedFile("
)
_PYI_ANCHOR = "DESCRIPTOR: _descriptor.FileDescriptor\n"
_PYI_POOL = "from google.protobuf import descriptor_pool as _descriptor_pool\n"


def generate() -> dict[str, str]:
    """The generated files' text by file name, with the private-pool change applied."""
    from grpc_tools import protoc

    files: dict[str, str] = {}
    for proto in PROTOS:
        stem = proto.removesuffix(".proto")
        with tempfile.TemporaryDirectory() as out:
            code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", f"--pyi_out={out}", str(HERE / proto)])
            if code != 0:
                raise RuntimeError(f"protoc failed on {proto} (exit {code})")
            py = (Path(out) / f"{stem}_pb2.py").read_text(encoding="utf-8")
            pyi = (Path(out) / f"{stem}_pb2.pyi").read_text(encoding="utf-8")
        if py.count(_DEFAULT_POOL) != 1 or pyi.count(_PYI_ANCHOR) != 1:
            raise RuntimeError("protoc output changed shape; update gateway/grpc/protos/regenerate.py")
        files[f"{stem}_pb2.py"] = py.replace(_DEFAULT_POOL, _PRIVATE_POOL)
        files[f"{stem}_pb2.pyi"] = _PYI_POOL + pyi.replace(
            _PYI_ANCHOR, _PYI_ANCHOR + "POOL: _descriptor_pool.DescriptorPool\n"
        )
    return files


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    stale = []
    for name, text in generate().items():
        path = HERE / name
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, encoding="utf-8")
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run python -m gateway.grpc.protos.regenerate", file=sys.stderr)
        return 1
    print("regenerated: " + (", ".join(stale) if stale else "nothing (up to date)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
