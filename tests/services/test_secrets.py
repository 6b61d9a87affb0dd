"""Rotated secrets are picked up: values are cached for `secrets_max_age_s`, not for the process's life,
and the database engine connects with the secret's current password (moto's Secrets Manager, the
embedded PostgreSQL)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from services.core import database, secrets
from services.core.aws import client
from services.core.settings import Settings

MAX_AGE_S = 300


class Clock:
    """Moves powertools' cache clock (`datetime.now()` in its parameters base module)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from aws_lambda_powertools.utilities.parameters import base

        self.offset = timedelta()
        clock = self

        class ShiftedDatetime(datetime):
            @classmethod
            def now(cls, tz=None):  # noqa: ANN001
                return datetime.now(tz) + clock.offset

        monkeypatch.setattr(base, "datetime", ShiftedDatetime)

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
def settings(aws) -> Settings:
    secrets.forget()
    return Settings(_env_file=None, secrets_max_age_s=MAX_AGE_S)


def new_secret(value: str) -> str:
    return client("secretsmanager").create_secret(Name=f"test-{uuid.uuid4().hex}", SecretString=value)["ARN"]


def rotate(arn: str, value: str) -> None:
    client("secretsmanager").put_secret_value(SecretId=arn, SecretString=value)


def test_a_rotated_secret_is_used_once_the_cached_value_is_older_than_max_age(settings, clock):
    arn = new_secret("key-one")
    assert secrets.secret_string(arn, settings=settings).get_secret_value() == "key-one"
    rotate(arn, "key-two")
    clock.advance(MAX_AGE_S - 1)
    assert secrets.secret_string(arn, settings=settings).get_secret_value() == "key-one"  # still cached
    clock.advance(2)
    assert secrets.secret_string(arn, settings=settings).get_secret_value() == "key-two"  # same process


def test_secret_reads_are_cached_within_max_age(settings, monkeypatch):
    arn = new_secret("key")
    calls = []
    sm = client("secretsmanager")
    original = sm.get_secret_value
    monkeypatch.setattr(sm, "get_secret_value", lambda **kw: calls.append(kw) or original(**kw))
    for _ in range(3):
        secrets.secret_string(arn, settings=settings)
    assert len(calls) == 1


def _url_with_password(db_url: str, password: str) -> str:
    return make_url(db_url).set(password=password).render_as_string(hide_password=False)


@pytest.fixture
def rotating_engine(db_url, settings, monkeypatch):
    """An engine made like get_engine() on AWS, from a secret; records each connection's parameters."""
    arn = new_secret(json.dumps({"url": _url_with_password(db_url, "password-one")}))
    engine = database.make_engine(database.database_url(settings.model_copy(update={"database_secret_arn": arn})),
                                  settings)
    database.follow_secret(engine, arn, settings)
    connects: list[dict] = []
    refused: set[str] = set()
    original = engine.dialect.connect

    def recording_connect(*cargs, **cparams):
        connects.append(cparams)
        if cparams.get("password") in refused:
            raise engine.dialect.loaded_dbapi.OperationalError(AUTH_FAILED)
        return original(*cargs, **cparams)

    monkeypatch.setattr(engine.dialect, "connect", recording_connect)
    yield engine, arn, connects, refused
    engine.dispose()


# What psycopg 3 raises when the server refuses a password: no SQLSTATE, the server's message (psycopg#1188).
AUTH_FAILED = ('connection failed: connection to server at "10.0.0.7", port 5432 failed: '
               'FATAL:  password authentication failed for user "collections"')


@pytest.fixture
def secret_reads(monkeypatch) -> list[bool]:
    """The database secret's reads, as their force_fetch flags (True: past the cache)."""
    reads: list[bool] = []
    original = secrets.secret_json

    def recording(secret_arn, settings=None, *, force_fetch=False):  # noqa: ANN001
        reads.append(force_fetch)
        return original(secret_arn, settings, force_fetch=force_fetch)

    monkeypatch.setattr(secrets, "secret_json", recording)
    return reads


def _connect_once(engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_a_new_database_connection_uses_the_rotated_password(rotating_engine, db_url, clock):
    engine, arn, connects, _ = rotating_engine
    _connect_once(engine)
    assert connects[-1]["password"] == "password-one"
    rotate(arn, json.dumps({"url": _url_with_password(db_url, "password-two")}))
    clock.advance(MAX_AGE_S + 1)
    engine.dispose()  # the pooled connection goes (as after pool_recycle); the next one is new
    _connect_once(engine)
    assert connects[-1]["password"] == "password-two"
    assert connects[-1]["prepare_threshold"] is None  # the engine's own connect_args are kept


def test_a_refused_cached_password_is_read_again_at_once(rotating_engine, db_url):
    engine, arn, connects, refused = rotating_engine
    _connect_once(engine)
    rotate(arn, json.dumps({"url": _url_with_password(db_url, "password-two")}))
    refused.add("password-one")  # the database has the new password; our cache is not yet expired
    engine.dispose()
    _connect_once(engine)
    assert [c["password"] for c in connects] == ["password-one", "password-one", "password-two"]


def test_a_refused_connection_with_an_unchanged_secret_is_an_error(rotating_engine, secret_reads):
    engine, _, connects, refused = rotating_engine
    refused.add("password-one")
    with pytest.raises(Exception, match="password authentication failed"):
        _connect_once(engine)
    assert len(connects) == 1
    assert secret_reads == [False, True]  # the cached value, then one read past the cache


def test_an_authentication_failure_reads_the_secret_again_once(rotating_engine, db_url, secret_reads):
    engine, arn, connects, refused = rotating_engine
    _connect_once(engine)  # the secret is cached
    rotate(arn, json.dumps({"url": _url_with_password(db_url, "password-two")}))
    refused.add("password-one")
    engine.dispose()
    secret_reads.clear()
    _connect_once(engine)
    assert secret_reads == [False, True]  # the cached value, refused; then once past the cache
    assert [c["password"] for c in connects] == ["password-one", "password-one", "password-two"]


def _unreachable() -> list[Exception]:
    import psycopg

    return [
        psycopg.OperationalError('connection failed: connection to server at "10.0.0.7", port 5432 failed: '
                                 "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
                                 "connections?"),
        psycopg.errors.ConnectionTimeout("connection timeout expired"),
        psycopg.OperationalError("connection failed: server closed the connection unexpectedly"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
    ]


@pytest.mark.parametrize("index", range(len(_unreachable())))
def test_a_connection_that_fails_otherwise_does_not_read_the_secret_again(rotating_engine, secret_reads,
                                                                           monkeypatch, index):
    engine, _, connects, _ = rotating_engine
    failure = _unreachable()[index]

    def unreachable(*cargs, **cparams):
        connects.append(cparams)
        raise failure

    monkeypatch.setattr(engine.dialect, "connect", unreachable)
    with pytest.raises(Exception) as raised:
        _connect_once(engine)
    assert raised.value.orig is failure
    assert secret_reads == [False] and len(connects) == 1  # one attempt, the cached secret only


def test_what_counts_as_an_authentication_failure():
    import psycopg

    assert database.is_auth_failure(psycopg.OperationalError(AUTH_FAILED))
    assert database.is_auth_failure(psycopg.errors.InvalidPassword("refused"))  # a SQLSTATE, when there is one
    assert database.is_auth_failure(psycopg.errors.InvalidAuthorizationSpecification("refused"))
    assert database.is_auth_failure(psycopg.OperationalError('FATAL:  role "collections_clone" does not exist'))
    # RDS Proxy's own texts (RDS User Guide, "Troubleshooting for RDS Proxy", RDS for PostgreSQL), wrapped as
    # psycopg 3 wraps a failed connect.
    assert database.is_auth_failure(psycopg.OperationalError(
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  The password that was '
        "provided for the role collections is wrong."))
    assert database.is_auth_failure(psycopg.OperationalError(
        'connection failed: connection to server at "10.0.0.5", port 5432 failed: FATAL:  This RDS proxy has no '
        "credentials for the role collections. Check the credentials for this role and try again."))
    # A network rule: a fresh secret cannot fix it, so it is not read again on every attempt.
    assert not database.is_auth_failure(psycopg.OperationalError(
        'connection failed: FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "collections", database "c"'))
    assert not any(database.is_auth_failure(error) for error in _unreachable())
