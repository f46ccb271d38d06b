"""`serve`'s in-process options: defaults and flags as the InProcessOptions they become."""

from __future__ import annotations

from gateway.cli import _parser
from jvm_bridge.inprocess import InProcessOptions


def test_serve_defaults_match_the_in_process_defaults() -> None:
    args = _parser().parse_args(["serve", "--jvm-main", "x.Main"])
    defaults = InProcessOptions()
    assert (args.workers, args.max_delay_us, args.gather_us) == (
        defaults.workers,
        defaults.max_delay_us,
        defaults.gather_us,
    )


def test_serve_gather_can_be_turned_off() -> None:
    args = _parser().parse_args(["serve", "--jvm-main", "x.Main", "--gather-us", "0", "--workers", "3"])
    assert args.gather_us == 0.0 and args.workers == 3
