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
    assert first == {"revision": head, "previous": None, "changed": True}
    assert migrations.current(empty_database) == head
    assert handler({}, None) == {"revision": head, "previous": head, "changed": False}


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
