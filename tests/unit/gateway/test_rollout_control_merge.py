"""The control plane keeps the newest wish per model when a resync's snapshot races an event."""

from __future__ import annotations

from typing import Any

from gateway.rollout_control import DESIRED_MAP, ControlPlane
from models.rollout import RolloutState


class _Map:
    """The slice of a Hazelcast blocking map the control plane touches; ``entry_set`` returns a set snapshot."""

    def __init__(self) -> None:
        self.snapshot: dict[str, str] = {}
        self.puts: dict[str, str] = {}

    def blocking(self) -> _Map:
        return self

    def entry_set(self) -> list[tuple[str, str]]:
        return list(self.snapshot.items())

    def add_entry_listener(self, **kwargs: Any) -> str:
        return "registration"

    def remove_entry_listener(self, registration: str) -> None:
        pass

    def put(self, key: str, value: str) -> None:
        self.puts[key] = value


class _Client:
    def __init__(self) -> None:
        self.maps: dict[str, _Map] = {}

    def get_map(self, name: str) -> _Map:
        return self.maps.setdefault(name, _Map())


class _Controller:
    def __init__(self) -> None:
        self.on_rollback: list[Any] = []


class _Event:
    def __init__(self, key: str, value: str) -> None:
        self.key, self.value = key, value


def _state(revision: int) -> str:
    return RolloutState("pctr", "1", "2", canary_pct=float(revision)).with_revision(revision).to_json()


def _plane() -> tuple[ControlPlane, _Map]:
    client = _Client()
    plane = ControlPlane(client, _Controller(), "r1")  # type: ignore[arg-type]
    return plane, client.get_map(DESIRED_MAP)


def test_a_stale_resync_snapshot_does_not_undo_a_newer_event() -> None:
    plane, desired = _plane()
    desired.snapshot = {"pctr": _state(4)}  # read by the resync just before revision 5 was written
    plane._on_event(_Event("pctr", _state(5)))
    plane._resync()
    assert RolloutState.from_json(plane._wanted["pctr"]).revision == 5


def test_a_newer_snapshot_and_newer_events_replace_what_is_held() -> None:
    plane, desired = _plane()
    plane._on_event(_Event("pctr", _state(2)))
    desired.snapshot = {"pctr": _state(3), "pcvr": RolloutState("pcvr", "1").with_revision(1).to_json()}
    plane._resync()
    assert RolloutState.from_json(plane._wanted["pctr"]).revision == 3
    assert "pcvr" in plane._wanted
    plane._on_event(_Event("pctr", _state(6)))
    assert RolloutState.from_json(plane._wanted["pctr"]).revision == 6


def test_unreadable_wishes_are_kept_so_that_the_replica_reports_them() -> None:
    plane, _ = _plane()
    plane._on_event(_Event("pctr", _state(3)))
    plane._on_event(_Event("pctr", "{not json"))
    assert plane._wanted["pctr"] == "{not json"
    plane._on_event(_Event("pctr", _state(4)))
    assert RolloutState.from_json(plane._wanted["pctr"]).revision == 4
