"""Failures that are not the caller's: a database that cannot be reached is a 503 with Retry-After
(and /health says so), our own bugs are a JSON 500; each failure is one log record, the outage is
reported at most every few seconds, and no SQL parameter reaches a log or a message."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from services.core import database
from services.core.settings import get_settings


@pytest.fixture
def database_down(monkeypatch, tmp_path):
    """DATABASE_URL on a socket folder where no server listens; the module's database afterwards."""
    monkeypatch.setenv("DATABASE_URL", f"postgresql+psycopg://nobody@/collections?host={tmp_path}")
    get_settings.cache_clear()
    database.reset()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    database.reset()


@pytest.fixture
def fresh_outage_log(monkeypatch):
    from services.api import errors

    monkeypatch.setattr(errors, "_outage", errors._OutageLog())


def _records(caplog, level=logging.WARNING):
    return [r for r in caplog.records if r.levelno >= level]


def test_health_reports_the_database(client):
    assert client.get("/health").json() == {"status": "ok", "database": "ok"}


def test_database_down_is_503_with_retry_after_and_one_log_line(client, alice, database_down, fresh_outage_log, caplog):
    caplog.set_level(logging.WARNING)
    caplog.clear()
    response = client.get("/items", headers=alice.headers)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "unavailable",
        "message": "the database is unavailable; try again shortly",
    }
    assert response.headers["retry-after"] == "5"
    records = [r for r in _records(caplog) if r.name.startswith("services.api")]
    assert len(records) == 1 and records[0].exc_info is None  # one line, no traceback
    assert "database unavailable" in records[0].getMessage()


def test_an_outage_does_not_log_every_request(client, alice, database_down, fresh_outage_log, caplog):
    caplog.set_level(logging.WARNING)
    caplog.clear()
    statuses = {client.get("/items", headers=alice.headers).status_code for _ in range(25)}
    statuses |= {
        client.post(
            "/uploads", headers=alice.headers, json={"filename": "a.png", "content_type": "image/png"}
        ).status_code
    }
    assert statuses == {503}
    assert len([r for r in _records(caplog) if r.name == "services.api.errors"]) == 1


def test_health_is_503_while_the_database_is_down(client, database_down):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unavailable"}


def test_an_unexpected_error_is_one_log_record_and_a_json_500(app, alice, caplog):
    from services.api.deps import get_storage

    class Broken:
        def presigned_post(self, *args, **kwargs):
            raise RuntimeError("bug: secret internal detail")

    app.dependency_overrides[get_storage] = Broken
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    try:
        with TestClient(app, raise_server_exceptions=True) as client:
            response = client.post(
                "/uploads", headers=alice.headers, json={"filename": "a.png", "content_type": "image/png"}
            )
    finally:
        app.dependency_overrides.pop(get_storage)
    assert response.status_code == 500
    assert response.json()["error"] == {"code": "internal_error", "message": "internal error; it has been logged"}
    assert "secret" not in response.text
    with_traceback = [r for r in caplog.records if r.exc_info]
    assert len(with_traceback) == 1 and "unhandled error on POST /uploads" in with_traceback[0].getMessage()


def test_sql_parameters_are_hidden(db_url):
    from sqlalchemy import text

    from services.core.database import session_scope

    with pytest.raises(Exception) as failure, session_scope() as session:
        # division by zero: the server's own message does not quote the value, only SQLAlchemy would.
        session.execute(text("SELECT 1 / (length(:title) - length(:title))"), {"title": "my private holiday title"})
    assert "my private holiday title" not in str(failure.value)
    assert "hidden due to hide_parameters" in str(failure.value)
