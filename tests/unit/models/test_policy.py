"""The version policy as tables: aspired versions and current states in, actions and the live version out."""

from __future__ import annotations

import pytest

from models.ids import ModelId
from models.policy import Action, Aspired, Kind, State, choose_live, decide

R, L, E, D = State.READY, State.LOADING, State.ERROR, State.DRAINING


def _states(**by_ref: State) -> dict[ModelId, State]:
    out = {}
    for ref, state in by_ref.items():
        name, version = ref.rsplit("_", 1)
        out[ModelId(name, version)] = state
    return out


def _acts(*pairs: tuple[Kind, str]) -> list[Action]:
    return [Action(kind, ModelId(*ref.split("@"))) for kind, ref in pairs]


LOAD, UNLOAD, FORGET = Kind.LOAD, Kind.UNLOAD, Kind.FORGET

DECIDE = [
    # (aspired, states, expected actions)
    ({"m": Aspired(frozenset({"1"}))}, {}, _acts((LOAD, "m@1"))),
    ({"m": Aspired(frozenset({"1"}))}, _states(m_1=R), []),
    # a new version: load it, keep the old one serving until it is ready
    ({"m": Aspired(frozenset({"2"}))}, _states(m_1=R), _acts((LOAD, "m@2"))),
    ({"m": Aspired(frozenset({"2"}))}, _states(m_1=R, m_2=L), []),
    ({"m": Aspired(frozenset({"2"}))}, _states(m_1=R, m_2=R), _acts((UNLOAD, "m@1"))),
    # the new version failed: the old one keeps serving, the failure is not retried
    ({"m": Aspired(frozenset({"2"}))}, _states(m_1=R, m_2=E), []),
    # withdrawn failure is forgotten (so aspiring it again retries)
    ({"m": Aspired(frozenset({"1"}))}, _states(m_1=R, m_2=E), _acts((FORGET, "m@2"))),
    # both versions aspired (pinning, canary): both load
    ({"m": Aspired(frozenset({"1", "2"}))}, _states(m_1=R), _acts((LOAD, "m@2"))),
    # a model withdrawn entirely unloads
    ({}, _states(m_1=R), _acts((UNLOAD, "m@1"))),
    # draining versions are left alone; models are independent
    (
        {"m": Aspired(frozenset({"2"})), "n": Aspired(frozenset({"5"}))},
        _states(m_1=D, m_2=R, n_4=R),
        _acts((LOAD, "n@5")),
    ),
    ({"m": Aspired(frozenset({"3"}))}, _states(m_1=R, m_2=R, m_3=R), _acts((UNLOAD, "m@1"), (UNLOAD, "m@2"))),
]


@pytest.mark.parametrize(("aspired", "states", "expected"), DECIDE)
def test_decide(aspired: dict[str, Aspired], states: dict[ModelId, State], expected: list[Action]) -> None:
    assert decide(aspired, states) == expected


LIVE = [
    # (aspired, states, current live, expected live)
    (Aspired(frozenset({"2"})), _states(m_1=R, m_2=L), "1", "1"),
    (Aspired(frozenset({"2"})), _states(m_1=R, m_2=R), "1", "2"),
    (Aspired(frozenset({"2"})), _states(m_1=R, m_2=E), "1", "1"),
    (Aspired(frozenset({"1", "2"}), live="1"), _states(m_1=R, m_2=R), "1", "1"),
    (Aspired(frozenset({"1", "10"})), _states(m_1=R, m_10=R), "1", "10"),  # numeric, not lexical
    (Aspired(frozenset({"3"})), _states(m_1=D, m_2=R), "1", "2"),  # current left: highest ready
    (Aspired(frozenset({"3"})), _states(m_3=L), None, None),
    (None, _states(m_1=R), "1", "1"),
]


@pytest.mark.parametrize(("want", "states", "current", "expected"), LIVE)
def test_choose_live(
    want: Aspired | None, states: dict[ModelId, State], current: str | None, expected: str | None
) -> None:
    assert choose_live("m", want, states, current) == expected


def test_live_must_be_aspired() -> None:
    with pytest.raises(ValueError, match="not among the aspired versions"):
        Aspired(frozenset({"1"}), live="2")
