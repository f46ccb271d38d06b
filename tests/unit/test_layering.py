"""Dependencies point one way: jvm_bridge -> gateway -> (models, cache); transports stay out of the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRANSPORT_LIBS = {"grpc", "jpype", "py4j"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _sources(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "target" not in p.parts]


@pytest.mark.parametrize("package", ["models", "cache"])
def test_model_and_feature_side_never_import_the_request_side(package: str) -> None:
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & {"gateway", "jvm_bridge"}) for p in _sources(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_gateway_never_imports_jvm_bridge_except_where_it_is_assembled() -> None:
    """gateway/cli.py assembles the server from its transports (STYLE: "the server that assembles them")."""
    offenders = {str(p.relative_to(ROOT)) for p in _sources("gateway") if "jvm_bridge" in _imports(p)}
    assert offenders <= {"gateway/cli.py"}


def test_scoring_core_never_imports_transport_libraries() -> None:
    core = [ROOT / "gateway" / f"{m}.py" for m in ("runtime", "engine", "options", "errors")]
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & TRANSPORT_LIBS) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}
