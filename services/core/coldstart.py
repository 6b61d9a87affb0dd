"""What a function's cold start does besides importing: the garbage collector waits, and a captured init
does the first event's imports.

**The collector waits until the first invocation has ended.** Init and the first event build the
process's long-lived objects: modules, classes, SQLAlchemy's and pydantic's tables of them. Each
allocation counts toward the collector's thresholds, so a cold start runs several full collections that
walk everything built so far and free almost nothing (measured on the artifact: 50-100 ms of a
600-1,000 ms cold start, tests/bench/bench_coldstart.py). Only a Lambda init is paused: the runtime sets
`AWS_LAMBDA_INITIALIZATION_TYPE` in every function's environment, and `make dev` or the test runner, which
import handler modules too, have no such variable. There, `pause_collector()` (called by
`observability.for_function` as a handler module is imported) disables the collector, and `init_over()`
(called by `observe.handler` when the process's first invocation returns or raises) moves every object
made so far into the permanent generation (`gc.freeze`) and enables it again: later collections skip
init's objects for the life of the instance. This is CPython's documented use of `gc.freeze` (added for
Instagram's prefork servers, bpo-31558): disable early, freeze once the long-lived objects are built,
enable. The price: cyclic garbage made before the freeze is never freed (init's, once); reference
counting frees everything else as usual.

**A captured init does the first event's imports.** The stage handlers import their runner (SQLAlchemy,
the stage's logic) on the first event: on an on-demand cold start the event waits for the same imports
either way, and a handler module stays cheap to import. When Lambda captures init instead
(`AWS_LAMBDA_INITIALIZATION_TYPE` is `snap-start`: init runs once when the version is published; or
`provisioned-concurrency`: init runs before traffic arrives, docs.aws.amazon.com/lambda/latest/dg/
configuration-envvars.html), nobody waits on init, so `preload()` does those imports there and SnapStart
keeps them in the snapshot.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Mapping

INIT_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"  # set by Lambda: on-demand, provisioned-concurrency or snap-start
CAPTURED_INITS = frozenset({"snap-start", "provisioned-concurrency"})

_state = "before"  # before → paused → over; once per process


def pause_collector(environ: Mapping[str, str] | None = None) -> None:
    """In a Lambda init (the runtime sets `AWS_LAMBDA_INITIALIZATION_TYPE` for every function), disable the
    cyclic garbage collector until `init_over()`. Once per process; a long-running process that imports
    handler modules (`make dev`'s worker, the test runner) has no such variable and is left alone."""
    global _state
    if _state != "before":
        return
    if not (os.environ if environ is None else environ).get(INIT_TYPE) or not gc.isenabled():
        _state = "over"  # not a Lambda init, or someone else turned the collector off: not ours to manage
        return
    gc.disable()
    _state = "paused"


def init_over() -> None:
    """The first invocation has ended: freeze what init built (out of every later collection) and enable the
    collector again. Later calls do nothing."""
    global _state
    if _state != "paused":
        _state = "over"
        return
    _state = "over"
    gc.freeze()
    gc.enable()


def collector_state() -> str:
    return _state


def init_is_captured(environ: Mapping[str, str] | None = None) -> bool:
    """Lambda runs this init before any event waits on it (SnapStart's publish, provisioned concurrency)."""
    return (os.environ if environ is None else environ).get(INIT_TYPE) in CAPTURED_INITS


def preload(*modules: str) -> bool:
    """Import what the first event needs now, if this init is captured; say whether it did."""
    if not init_is_captured():
        return False
    for name in modules:
        importlib.import_module(name)
    return True
