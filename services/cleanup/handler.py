"""Lambda entry point of cleanup: a schedule (EventBridge rule or EventBridge Scheduler).

Accepts both schedule payloads (see services.core.contracts.ScheduledInvocation); a detail of
{"dry_run": true} runs without changing anything. The logic is imported on the first event.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from services.core.contracts import ScheduledInvocation

logger = Logger(service="cleanup")


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    logger.append_keys(request_id=getattr(context, "aws_request_id", None))
    invocation = ScheduledInvocation.from_event(event)
    from services.cleanup.logic import run

    counts = run(dry_run=invocation.dry_run)
    logger.info("cleanup counts", extra={**counts, "trigger": invocation.source})
    return counts
