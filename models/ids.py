"""Model identities: ``ModelId(name, version)`` and the ``name@version`` reference a request may pin.

Names and versions follow the package format (:mod:`models.manifest`): a name is lowercase letters, digits and
``_.-`` (starting with a letter or digit, at most 128 characters); a version is a decimal number. Anything else, in
particular ``/``, ``..`` or a NUL byte, is refused with :class:`UnsafeNameError` before it can reach a file path.

Omitting the version (``"pctr"``) means "the live version of ``pctr``"; the registry decides which one that is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["ModelId", "UnsafeNameError", "check_name", "check_version", "parse_ref", "version_key"]

_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
_VERSION: Final = re.compile(r"^[0-9]{1,18}$")


class UnsafeNameError(ValueError):
    """A model name or version is not in the package format's alphabet (and could escape a directory)."""


def check_name(name: str) -> str:
    """``name`` if it is a valid model name, else :class:`UnsafeNameError`."""
    if not isinstance(name, str) or not _NAME.match(name) or name in (".", ".."):
        raise UnsafeNameError(f"model name {name!r} must match {_NAME.pattern}")
    return name


def check_version(version: str) -> str:
    """``version`` if it is a valid version (a decimal number string), else :class:`UnsafeNameError`."""
    if not isinstance(version, str) or not _VERSION.match(version):
        raise UnsafeNameError(f"model version {version!r} must be a decimal number (1 to 18 digits)")
    return version


def version_key(version: str) -> tuple[int, int, str]:
    """Sort key: decimal versions numerically, after any non-decimal ones (e.g. the empty version)."""
    return (1, int(version), version) if version.isdigit() else (0, 0, version)


@dataclass(frozen=True, order=True)
class ModelId:
    """One version of one model. Immutable; hashable; ``str()`` is ``name@version``."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def parse_ref(ref: str) -> tuple[str, str | None]:
    """Split ``name`` or ``name@version`` into ``(name, version or None)``. No validation beyond the split."""
    name, sep, version = ref.partition("@")
    return (name, version) if sep else (name, None)
