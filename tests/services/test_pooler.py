"""Through a real pooler that behaves like RDS Proxy: PgBouncer in transaction-pooling mode, which
refuses startup `options` and shares each server connection between client sessions.

The migrations, the API (its Lambda handler) and a pipeline stage (the image processor's handler)
run through it as an application role that is no superuser, as on RDS; the statement timeout those
sessions get is the role default the migrations set, with no startup option and no SET per session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text

from services.core import migrations
from tests.conftest import PgBouncer, reset_caches
from tests.services.api.lambda_events import LambdaContext, access_claims, http_api_event
from tests.services.pipeline.conftest import (
    deliver_concurrently,
    load_item,
    put_object,
    s3_event,
    textured_jpeg,
    worked_once,
)

APP_ROLE = "collections_app"  # listed in tests/conftest.py PGBOUNCER_USERS
STATEMENT_TIMEOUT_MS = 1500


@dataclass
class Pooled:
    url: str  # SQLAlchemy URL through PgBouncer, as the application role
    libpq: str
    database: str
    cognito: object  # services.local.aws's pool app: the API verifies real tokens in apigateway mode


@dataclass
class User:
    sub: str
    token: str
    client_id: str


@pytest.fixture(scope="module")
def pooled(pg, pgbouncer: PgBouncer, aws, monkeypatch_module) -> Iterator[Pooled]:
    """A database owned by the application role, migrated through PgBouncer; DATABASE_URL points at
    PgBouncer. The role may not create the pgvector extension (on RDS the master user may), so the
    superuser creates it first; everything else is the migrations' work, through the pooler."""
    database = f"pooled_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg.libpq_uri, autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone() is None:
            admin.execute(sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER").format(sql.Identifier(APP_ROLE)))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(APP_ROLE)))
    with psycopg.connect(pg.libpq_uri, dbname=database, autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS vector")

    monkeypatch_module.setenv("COLLECTIONS_DB_STATEMENT_TIMEOUT_MS", str(STATEMENT_TIMEOUT_MS))
    from services.core.settings import get_settings
    from services.local.aws import ensure_cognito, jwks_url

    # apigateway mode verifies the forwarded token too (services/core/auth.py): a pool on moto.
    cognito = ensure_cognito(get_settings(), pool_name=f"collections-pooler-{uuid.uuid4().hex[:8]}")
    monkeypatch_module.setenv("COLLECTIONS_AUTH_MODE", "apigateway")
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_USER_POOL_ID", cognito.user_pool_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_CLIENT_ID", cognito.client_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_JWKS_URL", jwks_url(get_settings(), cognito))
    url = pgbouncer.url(database, APP_ROLE)
    monkeypatch_module.setenv("DATABASE_URL", url)
    reset_caches()
    migrations.upgrade(url)
    yield Pooled(url=url, libpq=pgbouncer.libpq(database, APP_ROLE), database=database, cognito=cognito)
    reset_caches()
    pg.drop_database(database)


# --- the pooler models the proxy -----------------------------------------------------------------
def test_the_pooler_refuses_startup_options_like_rds_proxy(pooled):
    # RDS Proxy answers the same startup packet with "FATAL: Feature not supported: RDS Proxy currently
    # doesn't support command-line options." (psycopg/psycopg2#1577, stac-utils/pgstac#156); PgBouncer
    # with "unsupported startup parameter: options". Either way the connection fails before any query.
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(pooled.libpq, options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
    with psycopg.connect(pooled.libpq) as plain:  # the same connection without options is welcome
        assert plain.execute("SELECT current_user").fetchone() == (APP_ROLE,)


def test_the_pooler_shares_server_connections_between_client_sessions(pooled):
    """Transaction pooling: more client sessions than server connections, each transaction on
    whichever server connection is free (PgBouncer's own server_reset_query does not run)."""
    from tests.conftest import PGBOUNCER_POOL_SIZE

    clients = [psycopg.connect(pooled.libpq, autocommit=True) for _ in range(PGBOUNCER_POOL_SIZE + 3)]
    try:
        backends = {client.execute("SELECT pg_backend_pid()").fetchone()[0] for client in clients}
    finally:
        for client in clients:
            client.close()
    assert len(backends) <= PGBOUNCER_POOL_SIZE < len(clients)


# --- the statement timeout: a role default set by the migrations ---------------------------------
def test_migrations_ran_through_the_pooler_as_the_application_role(pooled):
    assert migrations.current(pooled.url) == migrations.head()
    with psycopg.connect(pooled.libpq) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'usage_counters'").fetchone()
        defaults = conn.execute(
            "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = current_user::regrole AND setdatabase = 0"
        ).fetchall()
    assert owner == (APP_ROLE,)
    assert {row[0] for row in defaults} >= {
        f"statement_timeout={STATEMENT_TIMEOUT_MS}",
        "hnsw.iterative_scan=relaxed_order",
        "hnsw.ef_search=40",
    }


def test_a_non_superuser_may_set_an_hnsw_role_default_only_once_pgvector_is_loaded(pooled, pg):
    """Why migration 0003 loads pgvector before its ALTER ROLE: until the library defines hnsw.*, the name
    is a placeholder, and PostgreSQL lets only a superuser (or a role granted SET on it) store a
    placeholder in pg_db_role_setting, since it cannot know the parameter is user-settable (guc.c,
    validate_option_array_item). On RDS the connection secret's role is no superuser either.
    A direct connection: a fresh backend, which no earlier query through the pooler has loaded pgvector into."""
    with psycopg.connect(pg.libpq_uri, dbname=pooled.database, user=APP_ROLE) as conn:
        refused = 'permission denied to set parameter "hnsw.ef_search"'
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=refused):
            conn.execute("ALTER ROLE CURRENT_USER SET hnsw.ef_search = 41")
        conn.rollback()
        conn.execute("SELECT '[1]'::vector")
        conn.execute("ALTER ROLE CURRENT_USER SET hnsw.ef_search = 41")  # accepted once pgvector is loaded
        conn.rollback()  # ALTER ROLE is transactional: the migration's value stays


def test_every_pooled_transaction_has_the_configured_statement_timeout(pooled):
    from services.core.database import get_engine

    engine = get_engine()  # the services' own engine: pool of 1 + overflow, through PgBouncer
    seen = set()
    for _ in range(20):  # many transactions, spread by the pooler over its server connections
        with engine.begin() as conn:
            seen.add(conn.execute(text("SHOW statement_timeout")).scalar_one())
    assert seen == {f"{STATEMENT_TIMEOUT_MS}ms"}  # PostgreSQL shows 1500 ms as "1500ms"


def test_a_statement_longer_than_the_timeout_is_cancelled_through_the_pooler(pooled):
    from sqlalchemy.exc import OperationalError

    from services.core.database import session_scope

    with (
        pytest.raises(OperationalError, match="canceling statement due to statement timeout"),
        session_scope() as session,
    ):
        session.execute(text("SELECT pg_sleep(:s)"), {"s": STATEMENT_TIMEOUT_MS / 1000 * 3})
    with session_scope() as session:  # and the pooled connection is fine afterwards
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_services_connect_without_session_state(pooled):
    """What RDS Proxy would pin on: no prepared statement survives on a server connection after many
    identical queries (psycopg would prepare after 5), and the engine sends no startup options."""
    from services.core.database import get_engine

    engine = get_engine()
    for _ in range(10):
        with engine.begin() as conn:
            conn.execute(text("SELECT count(*) FROM items WHERE owner_id = :o"), {"o": "nobody"})
    with engine.begin() as conn:
        assert conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one() == 0
        assert conn.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "relaxed_order"
        # The placeholder's value holds once pgvector is loaded into the session (as search does).
        conn.execute(text("SELECT '[1]'::vector"))
        assert conn.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"


# --- the API and a pipeline stage, through the pooler --------------------------------------------
def _user(pooled: Pooled) -> User:
    from services.core.settings import get_settings
    from services.local.aws import access_token, ensure_user

    email = f"pooler-{uuid.uuid4().hex[:8]}@example.com"
    sub = ensure_user(get_settings(), pooled.cognito, email)
    return User(sub=sub, token=access_token(get_settings(), pooled.cognito, email), client_id=pooled.cognito.client_id)


def _api(method: str, path: str, user: User, **kwargs):
    import json

    from services.api.handler import handler

    event = http_api_event(method, path, claims=access_claims(user.sub, user.client_id),
                           headers={"authorization": f"Bearer {user.token}"}, **kwargs)
    response = handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def test_an_upload_goes_through_the_api_and_the_image_processor(pooled, aws):
    from services.core.models import ItemStatus
    from services.core.settings import get_settings
    from services.image_processor.handler import handler as process

    owner = _user(pooled)
    status, upload = _api("POST", "/uploads", owner, body={"filename": "kite.jpg", "content_type": "image/jpeg"})
    assert status == 201, upload
    item_id, key = uuid.UUID(upload["item"]["id"]), upload["upload"]["key"]
    data = textured_jpeg((400, 300), seed=41)
    put_object(key, data)

    result = process(s3_event(get_settings().bucket, key, len(data)), None)

    assert result["result"] == "processed"
    assert load_item(item_id).status == ItemStatus.processed
    status, listed = _api("GET", "/items", owner)
    assert status == 200 and [item["id"] for item in listed["items"]] == [str(item_id)]
    status, _ = _api("DELETE", f"/items/{item_id}", owner, path_parameters={"item_id": str(item_id)})
    assert status in (200, 204)
    assert _api("GET", f"/items/{item_id}", owner, path_parameters={"item_id": str(item_id)})[0] == 404


def test_concurrent_deliveries_through_the_pooler_process_once(pooled, aws):
    """The stage's lease (a committed row value, no session state) holds across pooled connections."""
    from services.core.settings import get_settings
    from services.image_processor.handler import handler as process

    owner = _user(pooled)
    status, upload = _api("POST", "/uploads", owner, body={"filename": "twice.jpg", "content_type": "image/jpeg"})
    assert status == 201, upload
    data = textured_jpeg((900, 700), seed=42)
    key = upload["upload"]["key"]
    put_object(key, data)
    event = s3_event(get_settings().bucket, key, len(data))
    results = deliver_concurrently(lambda: process(event, None))
    assert worked_once(results, "processed"), results
