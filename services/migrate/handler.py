"""Lambda entry point of the migrate function: applies the Alembic migrations (invoked on deploy).

Returns the revision the database is at afterwards, so the deploy can log and check it, and the
database's max_connections (a warning when it is below the catalog's connection budget).

On the first deploy the function can run before the database takes connections: RDS Proxy's
target is registered by the AWS provider without waiting for it to become AVAILABLE
(terraform-provider-aws internal/service/rds/proxy_target.go creates with RegisterDBProxyTargets
and no health waiter), and a new target stays REGISTERING for minutes. So the handler waits for
a first connection, within the invocation's time, before it migrates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from services.core import coldstart
from services.core.observability import for_function

observe = for_function("migrate")
logger = observe.logger

# Time kept back from the invocation's remaining time for the migrations themselves.
MIGRATION_RESERVE_S = 60.0
# Without a Lambda context (tests, local runs): how long to wait for the database.
DEFAULT_WAIT_S = 240.0
RETRY_INTERVAL_S = 5.0
CONNECT_TIMEOUT_S = 5


class DatabaseUnreachable(RuntimeError):
    """No connection to the database within the invocation's time; nothing was migrated."""


def _connect_once(url: str) -> None:
    from sqlalchemy import create_engine, pool, text

    from services.core.database import normalize_url

    engine = create_engine(normalize_url(url), poolclass=pool.NullPool,
                           connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def wait_for_database(
    url: str,
    wait_s: float,
    *,
    connect: Callable[[str], None] = _connect_once,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Connect until it works or `wait_s` has passed; returns the failed attempts before success."""
    from sqlalchemy.exc import OperationalError

    deadline, failures = clock() + wait_s, 0
    while True:
        try:
            connect(url)
            return failures
        except OperationalError as error:  # refused, timed out, proxy without an available target
            failures += 1
            if clock() + RETRY_INTERVAL_S > deadline:
                raise DatabaseUnreachable(
                    f"no connection to the database after {failures} attempts in {wait_s:.0f} s "
                    f"(an RDS Proxy target still registering?): {error.orig or error}"
                ) from None
            logger.info("database not reachable yet", extra={"attempt": failures})
            sleep(RETRY_INTERVAL_S)


def connection_limit(url: str) -> int:
    """The database's max_connections, checked against the catalog's budget after each migration.

    The program sets it in the instance's parameter group, but it is a static parameter: an instance
    that existed before keeps its old limit until it is rebooted (README, "Connection budget"), and an
    external database is the operator's. Below the budget, the reserved concurrencies no longer fit."""
    from sqlalchemy import create_engine, pool, text

    from services import catalog
    from services.core.database import normalize_url

    engine = create_engine(normalize_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
    finally:
        engine.dispose()
    if limit < catalog.DATABASE_MAX_CONNECTIONS:
        logger.warning(
            "max_connections is below the connection budget: reboot the instance to apply its parameter group",
            extra={"max_connections": limit, "budget": catalog.DATABASE_MAX_CONNECTIONS},
        )
    return limit


def _wait_budget(context: Any) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return DEFAULT_WAIT_S
    return max(0.0, remaining() / 1000 - MIGRATION_RESERVE_S)


@observe.handler
def handler(event: dict[str, Any] | None = None, context: Any = None) -> dict[str, Any]:
    from services.core import migrations
    from services.core.database import database_url

    coldstart.init_over()  # the first event's imports are done: migrating runs with the collector on
    url = database_url()
    wait_for_database(url, _wait_budget(context))
    before = migrations.current(url)
    migrations.upgrade(url)
    after = migrations.current(url)
    logger.info("migrations applied", extra={"from": before, "to": after})
    return {"revision": after, "previous": before, "changed": before != after, "max_connections": connection_limit(url)}
