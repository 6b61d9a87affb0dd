"""Readiness, without a token: the function answers and its database takes a query.

200 {"status": "ok", "database": "ok"} or 503 {"status": "unavailable", "database": "unavailable"}
(the same body shape either way, so a probe reads one document). `make dev` prints the URL; the
release tooling's smoke test (pipelines/flip.py) asks it before moving traffic.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.api.errors import error_responses
from services.api.schemas import Health

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


def database_ready() -> bool:
    from sqlalchemy import text

    from services.core.database import get_engine

    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not ready"; the reason goes to the log only
        log.warning("health: the database is not ready: %s", type(error).__name__)
        return False
    return True


@router.get(
    "/health",
    response_model=Health,
    responses={
        503: {"model": Health, "description": "The database cannot be reached"},
        **error_responses(500),
    },
)
async def health() -> Health | JSONResponse:
    if await run_in_threadpool(database_ready):
        return Health(status="ok", database="ok")
    return JSONResponse(Health(status="unavailable", database="unavailable").model_dump(), status_code=503)
