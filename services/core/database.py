"""Engine and sessions. One small pool per process: a Lambda container serves one request at a time.

In prod the functions reach PostgreSQL through RDS Proxy, which multiplexes client sessions over
few database connections per transaction. Connections therefore carry no session state of ours:
- no startup `options` (RDS Proxy, like PgBouncer, refuses command-line options in the startup
  packet): the statement timeout is the database role's default, set by migration 0003;
- no server-side prepared statements: psycopg 3 prepares a query after it has run
  `prepare_threshold` (5) times on a connection, and "prepared statements cause the proxy to pin
  the session" (RDS User Guide, "Avoiding pinning an RDS Proxy"); through a transaction-pooling
  PgBouncer the statement would not even exist on the next server connection. AWS's own advice for
  psycopg 3 is `prepare_threshold=None` (aws/agent-toolkit-for-aws, proxy-pinning-postgresql.md).
tests/services/test_pooler.py proves this through a real PgBouncer in transaction-pooling mode.

On AWS the credentials come from a Secrets Manager secret that can be rotated. The engine reads
the secret (cached for `COLLECTIONS_SECRETS_MAX_AGE_S`, services/core/secrets.py) each time it
opens a connection, so a rotated password is used by the next new connection; when the server
refuses the cached one (an authentication failure, `is_auth_failure`), it reads the secret again at once
and retries that connection once. Any other connect failure (refused, timed out, a proxy without an
available target) is raised as it is: re-reading the secret would not help, and Secrets Manager would
be asked again on every attempt of an outage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import quote

# The driver loads with this module, not when SQLAlchemy opens the first connection: it is part of the first
# event's imports, made before the collector resumes (services/core/coldstart.py), as in the api's init.
import psycopg  # noqa: F401
import sqlalchemy.dialects.postgresql.psycopg  # noqa: F401
from sqlalchemy import Connection, Engine, create_engine, event

from services.core.settings import ProgramSettings, get_settings

if TYPE_CHECKING:  # the ORM loads with the first session: the pipeline stages use connections only
    from sqlalchemy.orm import Session, sessionmaker


class DatabaseNotConfigured(RuntimeError):
    pass


def normalize_url(url: str) -> str:
    """Accept plain libpq URLs and point SQLAlchemy at psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _url_from_secret(secret_arn: str, settings: ProgramSettings, *, force_fetch: bool = False) -> str:
    """Build the URL from an RDS-style secret (host, port, username, password, dbname) or {"url": ...}."""
    from services.core.secrets import secret_json

    secret = secret_json(secret_arn, settings, force_fetch=force_fetch)
    if "url" in secret:
        return secret["url"]
    return (
        f"postgresql://{quote(secret['username'], safe='')}:{quote(secret['password'], safe='')}"
        f"@{secret['host']}:{secret.get('port', 5432)}/{secret.get('dbname', 'collections')}?sslmode=require"
    )


def database_url(settings: ProgramSettings | None = None) -> str:
    settings = settings or get_settings()
    if settings.database_url:
        return normalize_url(settings.database_url)
    if settings.database_secret_arn:
        return normalize_url(_url_from_secret(settings.database_secret_arn, settings))
    raise DatabaseNotConfigured(
        "DATABASE_URL is not set. Run through `collections dev`/`collections migrate` (which start the "
        "embedded PostgreSQL) or set DATABASE_URL / COLLECTIONS_DATABASE_SECRET_ARN."
    )


# SQLSTATE class 28: 28P01 invalid_password, 28000 invalid_authorization_specification.
AUTH_SQLSTATES = frozenset({"28P01", "28000"})
# psycopg 3 gives a failed *connection* no SQLSTATE (libpq keeps the server's error fields of the startup
# to itself: psycopg/psycopg#1188), so the message decides. PostgreSQL's texts for 28P01 and 28000 (auth.c,
# miscinit.c; RDS uses English), and RDS Proxy's own for PostgreSQL clients (RDS User Guide, "Troubleshooting
# for RDS Proxy", RDS for PostgreSQL: "The password that was provided for the role <role> is wrong." and
# "This RDS proxy has no credentials for the role <role>."). Not pg_hba refusals: a network rule, which a
# fresh secret cannot fix, would then read Secrets Manager on every connect attempt.
_AUTH_MESSAGES = re.compile(
    r'password authentication failed|PAM authentication failed|role "[^"]*" does not exist'
    r"|The password that was provided for the role .* is wrong|This RDS proxy has no credentials for the role"
)


def is_auth_failure(error: BaseException) -> bool:
    """Did the server refuse these credentials (not: is it unreachable, slow, full or shedding load)?"""
    if getattr(error, "sqlstate", None) in AUTH_SQLSTATES:
        return True
    return bool(_AUTH_MESSAGES.search(str(error)))


def follow_secret(engine: Engine, secret_arn: str, settings: ProgramSettings) -> None:
    """Connect with the secret's current credentials, not those the engine was made with."""
    from sqlalchemy.engine import make_url

    def connect_params(force_fetch: bool) -> dict:
        url = make_url(normalize_url(_url_from_secret(secret_arn, settings, force_fetch=force_fetch)))
        return engine.dialect.create_connect_args(url)[1]

    @event.listens_for(engine, "do_connect")
    def _connect(dialect, connection_record, cargs, cparams):  # noqa: ANN001 (SQLAlchemy's event signature)
        cparams.update(connect_params(force_fetch=False))
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as error:
            if not is_auth_failure(error):
                raise
            fresh = connect_params(force_fetch=True)  # rotated since we cached it?
            if fresh == {k: cparams.get(k) for k in fresh}:
                raise
            cparams.update(fresh)
            return dialect.connect(*cargs, **cparams)


def make_engine(url: str, settings: ProgramSettings | None = None) -> Engine:
    settings = settings or get_settings()
    return create_engine(
        normalize_url(url),
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=settings.db_pool_pre_ping,  # a frozen Lambda container wakes up with closed connections
        pool_recycle=300,
        # Bound parameters (titles, descriptions, 1024-d vectors) never reach a log or an error message.
        hide_parameters=True,
        connect_args={"prepare_threshold": None},  # see the module docstring: never prepare server-side
    )


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    engine = make_engine(database_url(settings), settings)
    if not settings.database_url and settings.database_secret_arn:
        follow_secret(engine, settings.database_secret_arn, settings)
    return engine


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    from sqlalchemy.orm import sessionmaker

    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def reset() -> None:
    """Forget the cached engine (tests and the local runtime change DATABASE_URL)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A transaction: committed on success, rolled back on error."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def connection_scope() -> Iterator[Connection]:
    """A transaction on a Core connection (no ORM): committed on success, rolled back on error."""
    with get_engine().begin() as connection:
        yield connection
