"""Lambda entry point of the analyzer: ImageProcessed → Claude (or the local analyzer).

The stage runner (services/core/stage_runner.py) does the rest, and records the outcome as a metric through
the function's observability (services/core/observability.py). The runner and the stage's logic (SQLAlchemy,
Pillow, the model clients) are imported on the first event, not at an on-demand cold start
(tests/bench/bench_pipeline.py); when Lambda captures init (SnapStart, provisioned concurrency) they are
imported there (services/core/coldstart.py).
"""

from __future__ import annotations

from typing import Any

from services.core import coldstart
from services.core.observability import for_function

observe = for_function("analyzer")
# The first event's imports, at init only when Lambda captures it (SnapStart, provisioned concurrency).
coldstart.preload("services.core.stage_runner", "services.analyzer.logic")


@observe.handler
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    from services.core.stage_runner import run_event

    return run_event("analyze", event, context)
