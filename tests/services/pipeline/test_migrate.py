"""The migrate Lambda: applies the migrations to an empty database and returns the revision."""

from __future__ import annotations

import pytest


@pytest.fixture
def empty_database(pg, monkeypatch):
    from tests.conftest import reset_caches

    name = "pipeline_migrate_handler"
    pg.drop_database(name)
    url = pg.create_database(name, exist_ok=False)
    monkeypatch.setenv("DATABASE_URL", url)
    reset_caches()
    yield url
    reset_caches()
    pg.drop_database(name)


def test_migrate_handler_upgrades_to_head_and_is_repeatable(empty_database):
    from alembic.script import ScriptDirectory

    from services.core import migrations
    from services.migrate.handler import handler

    head = ScriptDirectory.from_config(migrations.alembic_config(empty_database)).get_current_head()

    first = handler({}, None)
    limit = first.pop("max_connections")
    assert first == {"revision": head, "previous": None, "changed": True}
    assert migrations.current(empty_database) == head
    again = handler({}, None)
    assert again == {"revision": head, "previous": head, "changed": False, "max_connections": limit}


def test_migrate_reports_the_database_connection_limit_and_warns_below_the_budget(
    empty_database, monkeypatch, caplog
):
    from services import catalog
    from services.migrate.handler import connection_limit

    with caplog.at_level("WARNING"):
        limit = connection_limit(empty_database)
    assert limit >= 1 and "below the connection budget" not in caplog.text
    monkeypatch.setattr(catalog, "DATABASE_MAX_CONNECTIONS", limit + 1)
    with caplog.at_level("WARNING"):
        assert connection_limit(empty_database) == limit
    assert "below the connection budget" in caplog.text


def test_migrate_handler_without_a_database_says_what_to_set(monkeypatch):
    from services.core.database import DatabaseNotConfigured
    from services.migrate.handler import handler
    from tests.conftest import reset_caches

    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("COLLECTIONS_DATABASE_SECRET_ARN", raising=False)
    reset_caches()
    try:
        with pytest.raises(DatabaseNotConfigured, match="DATABASE_URL is not set"):
            handler({}, None)
    finally:
        reset_caches()


def _closed_port_url() -> str:
    """A PostgreSQL URL on loopback where nothing listens: connecting is refused at once."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://collections:secret@127.0.0.1:{port}/collections"


class _FakeTime:
    def __init__(self):
        self.now, self.slept = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def test_the_handler_waits_for_a_database_that_is_not_reachable_yet(empty_database):
    """A proxy target still registering refuses connections for a while (the AWS provider does not
    wait for it): the first real connections fail, then the database is reached and migrated."""
    from services.migrate.handler import _connect_once, wait_for_database

    refused = _closed_port_url()
    attempts = []

    def connect(url):
        attempts.append(url)
        _connect_once(refused if len(attempts) <= 2 else url)

    fake = _FakeTime()
    assert wait_for_database(empty_database, 60, connect=connect, clock=fake.clock, sleep=fake.sleep) == 2
    assert len(attempts) == 3 and fake.slept == [5.0, 5.0]


def test_an_unreachable_database_fails_in_one_line_and_migrates_nothing(monkeypatch):
    from services.migrate import handler as module
    from tests.conftest import reset_caches

    monkeypatch.setenv("DATABASE_URL", _closed_port_url())
    reset_caches()
    upgraded = []
    monkeypatch.setattr("services.core.migrations.upgrade", lambda url: upgraded.append(url))

    class Context:  # 61 s left: 1 s to wait after the 60 s kept for the migrations
        def get_remaining_time_in_millis(self):
            return 61_000

    try:
        with pytest.raises(module.DatabaseUnreachable, match=r"no connection to the database after 1 attempts"):
            module.handler({}, Context())
    finally:
        reset_caches()
    assert upgraded == []

    fake = _FakeTime()
    with pytest.raises(module.DatabaseUnreachable, match="after 5 attempts in 20 s"):
        module.wait_for_database(_closed_port_url(), 20, clock=fake.clock, sleep=fake.sleep)
