"""Regenerate ``inference_pb2.py`` and ``inference_pb2.pyi`` from ``inference.proto``.

Usage: ``python -m gateway.grpc.protos.regenerate [--check]``. ``--check`` writes nothing and
exits 1 when the committed files differ from what the proto and this grpcio-tools generate.

The stock protoc output is changed in one place (see :mod:`gateway.grpc.protos`): the file is
added to a private descriptor pool, exported as ``POOL``, instead of protobuf's default pool.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

__all__ = ["generate", "main"]

HERE = Path(__file__).resolve().parent
PROTO = "inference.proto"
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

    with tempfile.TemporaryDirectory() as out:
        code = protoc.main(["protoc", f"-I{HERE}", f"--python_out={out}", f"--pyi_out={out}", str(HERE / PROTO)])
        if code != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
        py = (Path(out) / "inference_pb2.py").read_text(encoding="utf-8")
        pyi = (Path(out) / "inference_pb2.pyi").read_text(encoding="utf-8")
    if py.count(_DEFAULT_POOL) != 1 or pyi.count(_PYI_ANCHOR) != 1:
        raise RuntimeError("protoc output changed shape; update gateway/grpc/protos/regenerate.py")
    py = py.replace(_DEFAULT_POOL, _PRIVATE_POOL)
    pyi = _PYI_POOL + pyi.replace(_PYI_ANCHOR, _PYI_ANCHOR + "POOL: _descriptor_pool.DescriptorPool\n")
    return {"inference_pb2.py": py, "inference_pb2.pyi": pyi}


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
