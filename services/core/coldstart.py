"""What a function's cold start does besides importing: the garbage collector waits, and a captured init
does the first event's imports.

**On an on-demand cold start the collector waits until the first event's imports are done.** Init and
the first event's imports build the process's long-lived objects: modules, classes, SQLAlchemy's and
pydantic's tables of them, botocore's models. Each allocation counts toward the collector's thresholds,
so a cold start runs several full collections that walk everything built so far and free almost nothing
(`python -m tests.bench bench_coldstart` measures the same build with the collector left alone beside
it). So, only when `AWS_LAMBDA_INITIALIZATION_TYPE` is `on-demand` (Lambda sets the variable in every
function's environment, docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html):
- `pause_collector()` (called by `observability.for_function` as a handler module is imported) disables it;
- `init_over()` moves every object made so far into the permanent generation (`gc.freeze`) and enables it
  again, so later collections skip init's objects for the life of the instance. The code that knows when
  the first event's imports are done calls it: the stage runner once the stage's work and clients are made,
  before the work runs (services/core/stage_runner.py; the database driver loads with
  services/core/database.py, Pillow with the image processor's imaging module), cleanup and migrate before
  theirs. `observe.handler` calls it when the first invocation ends: the api's init probe
  (services/api/handler.py), and a first event that failed before that point, whose traceback's frames are
  then frozen with init's objects (once per instance).
This is CPython's documented use of `gc.freeze` (added for Instagram's prefork servers, bpo-31558):
disable early, freeze once the long-lived objects are built, enable. The price: cyclic garbage made
before the freeze is never freed; it is init's and the imports', once, never an event's work (but for the
failed first event above). Reference counting frees everything else as usual.

Nothing is paused otherwise: `make dev`'s worker and the test runner import handler modules without the
variable; a captured init (below) has nobody waiting, and under SnapStart the after-restore hooks drop
clients made at init, which a freeze would keep forever; any other or future init type is left alone.

**A captured init does the first event's imports.** The stage handlers import their runner (SQLAlchemy,
the stage's logic) on the first event: on an on-demand cold start the event waits for the same imports
either way, and a handler module stays cheap to import. When Lambda captures init instead
(`snap-start`: init runs once when the version is published; `provisioned-concurrency`: init runs before
traffic arrives), nobody waits on it, so `preload()` does those imports there and SnapStart keeps them in
the snapshot.
"""

from __future__ import annotations

import gc
import importlib
import os
from collections.abc import Mapping

INIT_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"  # set by Lambda in every function's environment
ON_DEMAND = "on-demand"  # a cold start an event waits for: the only one that pauses the collector
CAPTURED_INITS = frozenset({"snap-start", "provisioned-concurrency"})  # init runs before any event waits

_state = "before"  # before → paused → over; once per process


def pause_collector(environ: Mapping[str, str] | None = None) -> None:
    """On an on-demand cold start, disable the cyclic garbage collector until `init_over()`. Once per
    process; any other process (another init type, `make dev`, the test runner) is left alone."""
    global _state
    if _state != "before":
        return
    if (os.environ if environ is None else environ).get(INIT_TYPE) != ON_DEMAND or not gc.isenabled():
        _state = "over"  # not an on-demand cold start, or someone else turned the collector off: not ours
        return
    gc.disable()
    _state = "paused"


def init_over() -> None:
    """The first event's imports are done: freeze what init built (out of every later collection) and enable
    the collector again. Later calls do nothing."""
    global _state
    was_paused, _state = _state == "paused", "over"
    if was_paused:
        gc.freeze()
        gc.enable()


def init_is_captured(environ: Mapping[str, str] | None = None) -> bool:
    """Lambda runs this init before any event waits on it (SnapStart's publish, provisioned concurrency)."""
    return (os.environ if environ is None else environ).get(INIT_TYPE) in CAPTURED_INITS


def preload(*modules: str) -> None:
    """Import what the first event needs now, if this init is captured."""
    if init_is_captured():
        for name in modules:
            importlib.import_module(name)
