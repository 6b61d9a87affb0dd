"""Lambda entry point of the migrate function: applies the Alembic migrations (invoked on deploy).

Returns the revision the database is at afterwards, so the deploy can log and check it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

logger = Logger(service="migrate")


def handler(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    from services.core import migrations
    from services.core.database import database_url

    url = database_url()
    before = migrations.current(url)
    migrations.upgrade(url)
    after = migrations.current(url)
    logger.info("migrations applied", extra={"from": before, "to": after})
    return {"revision": after, "previous": before, "changed": before != after}
