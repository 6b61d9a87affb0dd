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
# Every stage's function (a new stage's too) and cleanup: their handlers import their logic on the first event.
STAGE_HANDLERS = {fn.name: fn.handler.rsplit(".", 1)[0] for fn in catalog.FUNCTIONS
                  if fn.name in {stage.function for stage in catalog.STAGES} | {"cleanup"}}


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


def test_on_demand_the_collector_waits_at_the_latest_until_the_first_invocation_ends_and_init_is_frozen():
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


@pytest.mark.parametrize("init_type", ["snap-start", "provisioned-concurrency", "lambda-managed-instances"])
def test_an_init_nobody_waits_for_or_one_we_do_not_know_keeps_its_collector(init_type):
    """Captured inits: no one waits, and SnapStart's restore hooks drop clients a freeze would keep forever."""
    state = fresh(FIRST_INVOCATION_RAISES, **{coldstart.INIT_TYPE: init_type})
    assert state == {"paused_at_init": False, "enabled_after": True, "frozen": 0}


STAGE_WORK_SEES_THE_COLLECTOR = """
import gc, json, sys, types
from pipelines import flip
from services import catalog
import services.analyzer.handler as module
from services.core import stage_runner
from services.core.pipeline_store import Outcome

seen = {}

class Work:
    def handle(self, envelope):
        seen["enabled_during_work"] = gc.isenabled()
        return Outcome(None, "skipped")

from services.core import coldstart
real_over = coldstart.init_over
def over():
    seen.setdefault("loaded_when_the_collector_resumes",
                    sorted(m for m in ("psycopg", "sqlalchemy.dialects.postgresql.psycopg") if m in sys.modules))
    real_over()
coldstart.init_over = over

real = stage_runner.importlib.import_module
stage_runner.importlib = types.SimpleNamespace(import_module=lambda name: types.SimpleNamespace(ImageAnalyzer=Work)
                                               if name == "services.analyzer.logic" else real(name))
seen["enabled_before"] = gc.isenabled()
module.handler(flip.pipeline_unknown_item_event(catalog.IMAGE_PROCESSED, "us-east-1"), None)
print(json.dumps(seen))
"""


def test_a_stages_work_runs_with_the_collector_on_the_pause_covers_only_the_first_events_imports():
    """A first event's work (a large image, a long batch) must not grow garbage that nothing collects, nor have
    its cycles frozen for the life of the instance."""
    assert fresh(STAGE_WORK_SEES_THE_COLLECTOR, **ON_DEMAND) == {
        "enabled_before": False,
        "enabled_during_work": True,
        # the database driver is one of the first event's imports: loaded before, and frozen with, init's objects
        "loaded_when_the_collector_resumes": ["psycopg", "sqlalchemy.dialects.postgresql.psycopg"],
    }


def test_the_image_processors_work_module_loads_pillow_with_it():
    """The stage runner imports the work before the collector resumes: Pillow comes with it, not mid-work."""
    loaded = fresh(PRELOADED.format(handler="services.image_processor.logic",
                                    modules=["PIL.Image", "PIL.WebPImagePlugin"]))
    assert loaded == ["PIL.Image", "PIL.WebPImagePlugin"]


@pytest.mark.parametrize("handler", sorted({fn.handler.rsplit(".", 1)[0] for fn in catalog.FUNCTIONS}))
def test_every_handler_module_registers_the_snapstart_hooks(handler):
    """snapStart: true on any function: connections closed before the snapshot, state renewed on restore."""
    code = (f"import json, {handler}; from services.core import snapstart; "
            "print(json.dumps([sorted(snapstart._before), sorted(snapstart._after)]))")
    before, after = fresh(code, **{coldstart.INIT_TYPE: "snap-start"})
    assert "services.core.snapstart.close_database_connections" in before
    assert "services.core.snapstart.renew_process_state" in after


def test_a_collector_someone_else_turned_off_stays_off(monkeypatch):
    monkeypatch.setattr(coldstart, "_state", "before")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        coldstart.pause_collector(ON_DEMAND)
        coldstart.init_over()
        assert not gc.isenabled()
        assert coldstart._state == "over"
    finally:
        if was_enabled:
            gc.enable()


def test_after_the_first_invocation_nothing_pauses_the_collector_again(monkeypatch):
    monkeypatch.setattr(coldstart, "_state", "over")
    was_enabled = gc.isenabled()
    try:
        coldstart.pause_collector(ON_DEMAND)  # a second handler module imported in the same process
        assert gc.isenabled() == was_enabled
    finally:
        if was_enabled:
            gc.enable()  # never leave the test runner without its collector


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


PILLOW_PLUGINS = """
import io, json, sys
from PIL import Image
image = Image.radial_gradient("L").resize((1200, 900)).convert("RGB")
from services.image_processor.imaging import process_image
from services.core.ai.local import LocalAnalyzer
for fmt in ("JPEG", "PNG", "GIF", "WEBP"):  # what uploads may be
    out = io.BytesIO()
    image.save(out, fmt)
    processed = process_image(out.getvalue())
    for thumbnail in processed.thumbnails.values():
        LocalAnalyzer().analyze(thumbnail.data, "image/webp")
from PIL import Image
# Pillow's own flag: 2 once Image.init() imported every plugin it has
print(json.dumps({"initialized": Image._initialized,
                  "plugins": sorted(m for m in sys.modules if m.endswith("ImagePlugin"))}))
"""


def test_thumbnailing_and_local_analysis_load_only_the_pillow_plugins_they_use():
    """WebP registered up front: neither opening an upload nor saving or reading a WebP thumbnail makes
    Pillow import all of its ~45 plugins (a first event's imports)."""
    state = fresh(PILLOW_PLUGINS)
    assert state["initialized"] < 2, state
    assert len(state["plugins"]) < 10, state  # of ~45
