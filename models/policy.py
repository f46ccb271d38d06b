"""The version policy: what the manager does next, as a pure function of two snapshots.

Like TF Serving's ``AvailabilityPreservingPolicy``: the source says which versions of each model it wants
(:class:`Aspired`); the manager reports the state of every version it holds; :func:`decide` returns the next
actions and :func:`choose_live` which version serves un-pinned requests. No threads, no clocks, no I/O, so both are
tested with tables.

Rules of :func:`decide`, in order:

1. Load every aspired version the manager does not hold. A version in ``ERROR`` is not retried while it stays
   aspired; the source retries by withdrawing it and aspiring it again.
2. Forget a version in ``ERROR`` that is no longer aspired.
3. Unload a ``READY`` version that is no longer aspired only when its model keeps serving without it: another
   version of the same model is ``READY`` and aspired, or the model is no longer aspired at all. Until then the old
   version serves (availability first: a new version that fails to load leaves the old one in place).

Rules of :func:`choose_live`, for one model:

1. The aspired live version, if it is ``READY``.
2. Else the current live version, if it is still ``READY`` (keep serving what served).
3. Else the highest ``READY`` aspired version; else the highest ``READY`` version; else none.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from models.ids import ModelId, version_key

__all__ = ["Action", "Aspired", "Kind", "State", "choose_live", "decide"]


class State(enum.Enum):
    """Where one version is in its life (TF Serving's ``LoaderHarness::State``). Transitions only go down the list,
    except that any state may go to ``ERROR``."""

    NEW = "new"  # wanted, not yet started
    LOADING = "loading"  # the loader runs on the load pool (file read, session built)
    WARMING = "warming"  # loaded; reference inputs run through it before it may serve
    READY = "ready"  # serves; readers may acquire handles
    DRAINING = "draining"  # no new handles; in-flight calls finish on it
    UNLOADED = "unloaded"  # closed; the manager forgets it
    ERROR = "error"  # load or warm-up failed; never served; the message says why


@dataclass(frozen=True)
class Aspired:
    """The versions of one model a source wants loaded, and which should serve un-pinned requests.

    ``live=None`` means the highest aspired version. ``live`` must be one of ``versions``.
    """

    versions: frozenset[str]
    live: str | None = None

    def __post_init__(self) -> None:
        if self.live is not None and self.live not in self.versions:
            raise ValueError(f"live version {self.live!r} is not among the aspired versions {sorted(self.versions)}")

    @property
    def wanted_live(self) -> str | None:
        if self.live is not None:
            return self.live
        return max(self.versions, key=version_key) if self.versions else None


class Kind(enum.Enum):
    LOAD = "load"
    UNLOAD = "unload"
    FORGET = "forget"


@dataclass(frozen=True)
class Action:
    kind: Kind
    id: ModelId


_ORDER = (Kind.LOAD, Kind.UNLOAD, Kind.FORGET)


def _order(action: Action) -> tuple[int, ModelId]:
    return (_ORDER.index(action.kind), action.id)


def decide(aspired: Mapping[str, Aspired], states: Mapping[ModelId, State]) -> list[Action]:
    """The actions to take now (see the module rules), loads first, each list sorted by id."""
    actions: list[Action] = []
    for name, want in aspired.items():
        for version in want.versions:
            if ModelId(name, version) not in states:
                actions.append(Action(Kind.LOAD, ModelId(name, version)))
    for mid, state in states.items():
        wish = aspired.get(mid.name)
        if wish is not None and mid.version in wish.versions:
            continue
        if state is State.ERROR:
            actions.append(Action(Kind.FORGET, mid))
        elif state is State.READY and (wish is None or _serves_without(mid, wish, states)):
            actions.append(Action(Kind.UNLOAD, mid))
    return sorted(actions, key=_order)


def _serves_without(mid: ModelId, want: Aspired, states: Mapping[ModelId, State]) -> bool:
    return any(states.get(ModelId(mid.name, v)) is State.READY for v in want.versions)


def choose_live(name: str, want: Aspired | None, states: Mapping[ModelId, State], current: str | None) -> str | None:
    """The version of ``name`` that un-pinned requests should reach (see the module rules)."""

    def ready(version: str | None) -> bool:
        return version is not None and states.get(ModelId(name, version)) is State.READY

    if want is not None and ready(want.wanted_live):
        return want.wanted_live
    if ready(current):
        return current
    ready_versions = [m.version for m, s in states.items() if m.name == name and s is State.READY]
    aspired_ready = [v for v in ready_versions if want is not None and v in want.versions]
    for pool in (aspired_ready, ready_versions):
        if pool:
            return max(pool, key=version_key)
    return None
