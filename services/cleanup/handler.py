"""Lambda entry point of cleanup: a schedule (EventBridge rule or EventBridge Scheduler).

Accepts both schedule payloads (see services.core.contracts.ScheduledInvocation); a detail of
{"dry_run": true} runs without changing anything. The logic is imported on the first event.
"""

from __future__ import annotations

from typing import Any

from services.core.contracts import ScheduledInvocation
from services.core.observability import for_function

observe = for_function("cleanup")
logger = observe.logger


@observe.handler
def handler(event: Any, context: Any = None) -> dict[str, Any]:
    invocation = ScheduledInvocation.from_event(event)
    from services.cleanup.logic import run

    counts = run(dry_run=invocation.dry_run)
    logger.info("cleanup counts", extra={**counts, "trigger": invocation.source})
    return counts
