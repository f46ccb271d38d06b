"""CPython's cyclic garbage collector in a serving process.

A full collection (generation 2) holds the GIL for as long as it takes to walk every object the collector tracks,
and no request is served meanwhile. A gateway's heap is mostly objects that live as long as the process: modules,
classes, functions, the loaded models' Python objects. Measured with the 24 demo models loaded: 137k tracked
objects, and a full collection, set off by the allocations of a model load during a hot-swap, took 79-92 ms: the
p99.9 of the requests during swaps was 47-87 ms, one such pause every few dozen swaps.

:func:`freeze_startup_heap` collects once, then moves every surviving object to the collector's permanent generation
(``gc.freeze()``, the technique Instagram's prefork servers made known): later collections walk only what was
allocated since, a few thousand objects. The servers call it once their models are loaded and their transport is
up, just before they take traffic; anything that embeds an :class:`gateway.engine.Engine` in a long-lived process
should do the same.

The price: an object frozen here that later becomes garbage *inside a reference cycle* is never reclaimed (objects
freed by reference counting are unaffected). A swapped-out model version is freed by reference counting: its
runtime, session and bindings go when the manager closes it, with the collector disabled (tested in
``tests/unit/gateway/test_heap.py``), so swapping versions that were loaded before the freeze leaks nothing.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> int:
    """Collect, then freeze every surviving object out of later collections; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
