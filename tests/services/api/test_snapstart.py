"""SnapStart, simulated in-process: init → before-snapshot hooks → (time passes, the database
secret rotates) → after-restore hooks → the first request after restore.

The hooks are the ones the runtime's `snapshot_restore_py` would run (services/core/snapstart.py
registers them there too when it exists); here the module's run_* functions run them in the
runtime's order.
"""

from __future__ import annotations

import json
import random

import psycopg
import pytest
from sqlalchemy import Engine, event

from services.core import aws, snapstart
from services.core.settings import get_settings
from tests.conftest import reset_caches
from tests.services.api.lambda_events import LambdaContext, access_claims, http_api_event


@pytest.fixture
def secret_database(db_url, aws, monkeypatch):
    """The database URL comes from Secrets Manager (as on AWS), with application_name marking
    which version of the secret a connection was opened with."""
    secrets = aws_client("secretsmanager")
    name = f"collections-snapstart-{id(monkeypatch)}"
    arn = secrets.create_secret(Name=name, SecretString=json.dumps({"url": _with_name(db_url, "v1")}))["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("COLLECTIONS_DATABASE_SECRET_ARN", arn)
    monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "apigateway")
    reset_caches()
    yield arn, db_url
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("COLLECTIONS_DATABASE_SECRET_ARN")
    reset_caches()


def _with_name(url: str, name: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}application_name={name}"


def aws_client(service: str):
    return aws.client(service, get_settings())


@pytest.fixture
def connections():
    """Backend pid of every connection any engine opens."""
    opened: list[int] = []

    def on_connect(dbapi_connection, _record):
        opened.append(dbapi_connection.info.backend_pid)

    event.listen(Engine, "connect", on_connect)
    yield opened
    event.remove(Engine, "connect", on_connect)


def _backend(db_url: str, pid: int) -> tuple | None:
    with psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        return conn.execute("SELECT pid, application_name FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


def _list_items(handler, cognito) -> int:
    # apigateway mode verifies the forwarded token as well as the claims (services/core/auth.py)
    user = cognito.alice
    event_ = http_api_event("GET", "/items", query={"limit": 5}, claims=access_claims(user.sub, cognito.client_id),
                            headers={"authorization": f"Bearer {user.token}"})
    return handler(event_, LambdaContext())["statusCode"]


def test_first_request_after_restore_opens_a_fresh_connection_with_the_rotated_secret(
    cognito, secret_database, connections
):
    from services.api.handler import handler

    arn, db_url = secret_database
    assert _list_items(handler, cognito) == 200  # init + the first request before the snapshot
    assert len(connections) == 1
    before = connections[0]
    assert _backend(db_url, before)[1] == "v1"

    snapstart.run_before_snapshot()
    assert _backend(db_url, before) is None  # closed: no socket goes into the snapshot

    # While the snapshot waits, the secret is rotated (here: a new application_name).
    aws_client("secretsmanager").put_secret_value(
        SecretId=arn, SecretString=json.dumps({"url": _with_name(db_url, "v2")})
    )
    snapstart.run_after_restore()
    assert _list_items(handler, cognito) == 200
    assert len(connections) == 2
    after = connections[1]
    assert after != before
    assert _backend(db_url, after)[1] == "v2"  # the secret was read again, not taken from the snapshot


def test_each_restored_copy_draws_its_own_random_numbers():
    snapshot_state = random.getstate()
    draws = []
    for _ in range(2):  # two instances resumed from the same snapshot
        random.setstate(snapshot_state)
        snapstart.run_after_restore()
        draws.append(random.random())
    random.setstate(snapshot_state)
    unhooked = [random.random(), (random.setstate(snapshot_state), random.random())[1]]
    assert unhooked[0] == unhooked[1]  # what a restore without the hook would do
    assert draws[0] != draws[1]


def test_restore_forgets_clients_secrets_and_verifiers(cognito, monkeypatch):
    from services.api import deps
    from services.core import ai, auth, secrets

    monkeypatch.setenv("COLLECTIONS_AUTH_MODE", "jwks")
    get_settings.cache_clear()
    first_client = aws_client("s3")
    verifier = auth.get_verifier()
    ai.get_embedder()
    deps._storage_for(get_settings())
    snapstart.run_after_restore()
    assert aws_client("s3") is not first_client
    assert auth.get_verifier() is not verifier
    assert ai._built == {} and deps._storage is None
    assert secrets.cached_count() == 0


def test_hooks_register_once_and_run_in_the_runtimes_order(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(snapstart, "_before", {})
    monkeypatch.setattr(snapstart, "_after", {})

    def first():
        calls.append("first")

    def second():
        calls.append("second")

    for hook in (first, second, first):  # a module imported twice registers once
        snapstart.before_snapshot(hook)
        snapstart.after_restore(hook)
    snapstart.run_before_snapshot()
    snapstart.run_after_restore()
    assert calls == ["second", "first", "first", "second"]  # before: reverse order; after: in order
    assert not snapstart.runtime_hooks_available()  # no Lambda runtime here: nothing registered with it


def test_restore_alone_drops_connections_made_before_the_snapshot(cognito, secret_database, connections):
    """Even a connection opened after the before-snapshot hooks (or by a hook) is not reused."""
    from services.api.handler import handler

    _, db_url = secret_database
    assert _list_items(handler, cognito) == 200
    snapstart.run_after_restore()
    assert _backend(db_url, connections[0]) is None
    assert _list_items(handler, cognito) == 200
    assert connections[1] != connections[0]
