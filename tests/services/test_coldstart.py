"""A cold start's garbage collector and captured init (services/core/coldstart.py), each in a fresh interpreter:
the collector's state and sys.modules belong to the process, and the test runner's would tell nothing."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services import catalog
from services.core import coldstart
from services.core.environment import LAMBDA_MARKER, required_variables

ROOT = Path(__file__).resolve().parents[2]
STAGE_HANDLERS = {fn.name: fn.handler.rsplit(".", 1)[0] for fn in catalog.FUNCTIONS
                  if fn.name in ("image_processor", "analyzer", "embedder", "cleanup")}


def fresh(code: str, **env: str) -> dict:
    """Run `code` in a new interpreter of this venv (no inherited Lambda or init-type variables); the JSON
    it prints last."""
    base = {k: v for k, v in os.environ.items() if k not in (LAMBDA_MARKER, coldstart.INIT_TYPE)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**base, "COLLECTIONS_LOG_LEVEL": "WARNING", **env}, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


FIRST_INVOCATION_RAISES = """
import gc, json
from services.core.observability import for_function
observe = for_function("cleanup")
paused = not gc.isenabled()

@observe.handler
def handler(event, context):
    raise RuntimeError("the first invocation fails")

try:
    handler({}, None)
except RuntimeError:
    pass
print(json.dumps({"paused_at_init": paused, "enabled_after": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


ON_DEMAND = {coldstart.INIT_TYPE: "on-demand"}  # what Lambda's runtime sets for a plain cold start


def test_in_a_lambda_init_the_collector_waits_until_the_first_invocation_ends_and_init_is_frozen():
    on_lambda = {name: "arn:aws:secretsmanager:us-east-1:1:secret:x" for name in required_variables("cleanup")}
    state = fresh(FIRST_INVOCATION_RAISES, **ON_DEMAND, **on_lambda, **{LAMBDA_MARKER: "collections-test-cleanup"})
    assert state["paused_at_init"] and state["enabled_after"]  # a first invocation that raised ends init too
    assert state["frozen"] > 10_000  # init's modules, classes and functions: out of every later collection


def test_a_process_that_is_not_a_lambda_init_keeps_its_collector():
    """make dev's worker and the test runner import handler modules too: no pause, nothing frozen."""
    state = fresh(FIRST_INVOCATION_RAISES)
    assert state == {"paused_at_init": False, "enabled_after": True, "frozen": 0}


@pytest.mark.parametrize("name", sorted(STAGE_HANDLERS))
def test_a_stage_handler_module_leaves_the_collector_paused_for_its_first_event(name):
    state = fresh(f"import gc, json, {STAGE_HANDLERS[name]}; print(json.dumps({{'enabled': gc.isenabled()}}))",
                  **ON_DEMAND)
    assert state == {"enabled": False}


def test_the_api_init_ends_with_the_collector_on_its_probe_request_was_the_first_invocation():
    code = "import gc, json, services.api.handler; print(json.dumps([gc.isenabled(), gc.get_freeze_count()]))"
    enabled, frozen = fresh(code, **ON_DEMAND)
    assert enabled and frozen > 10_000


def test_a_collector_someone_else_turned_off_stays_off(monkeypatch):
    monkeypatch.setattr(coldstart, "_state", "before")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        coldstart.pause_collector(ON_DEMAND)
        coldstart.init_over()
        assert not gc.isenabled()
        assert coldstart.collector_state() == "over"
    finally:
        if was_enabled:
            gc.enable()


def test_after_the_first_invocation_nothing_pauses_the_collector_again(monkeypatch):
    monkeypatch.setattr(coldstart, "_state", "over")
    coldstart.pause_collector(ON_DEMAND)  # a second handler module imported in the same process
    assert gc.isenabled()


PRELOADED = "import json, sys, {handler}; print(json.dumps(sorted(m for m in {modules!r} if m in sys.modules)))"


@pytest.mark.parametrize("init_type", ["snap-start", "provisioned-concurrency", "on-demand", None])
def test_a_captured_init_imports_what_the_first_event_needs(init_type):
    modules = ["services.core.stage_runner", "services.analyzer.logic", "sqlalchemy"]
    env = {} if init_type is None else {coldstart.INIT_TYPE: init_type}
    loaded = fresh(PRELOADED.format(handler=STAGE_HANDLERS["analyzer"], modules=modules), **env)
    if init_type in ("snap-start", "provisioned-concurrency"):
        assert loaded == sorted(modules)
    else:  # on demand the first event waits for them either way; the handler module stays cheap to import
        assert loaded == []


def test_every_stage_handler_preloads_its_runner_and_its_own_logic_when_init_is_captured():
    for name, handler in STAGE_HANDLERS.items():
        own = {"cleanup": "services.cleanup.logic"}.get(name) or catalog.stage_of_function(name).work.rsplit(".", 1)[0]
        loaded = fresh(PRELOADED.format(handler=handler, modules=[own]), **{coldstart.INIT_TYPE: "snap-start"})
        assert loaded == [own], name
