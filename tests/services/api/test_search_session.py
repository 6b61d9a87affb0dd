"""The session an HNSW search runs in: the role defaults from migration 0003, with no SET on a healthy
connection (RDS Proxy would pin it), and set for the transaction on a stale one (opened before the
migration set them, which a pooler keeps until it replaces it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from sqlalchemy import event, text

from services.api import queries
from services.core.database import get_engine, session_scope
from services.core.settings import get_settings

MIGRATION_0003 = Path(queries.__file__).parents[1] / "core/migrations/versions/0003_i8db_proxy_ready.py"


@pytest.fixture
def hnsw_plan(db_url, monkeypatch):
    """Every search takes the HNSW plan (the one that needs the settings), whatever the collection's size."""
    monkeypatch.setattr(queries, "EXACT_SEARCH_MAX_CANDIDATES", -1)
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", record)
    yield statements
    event.remove(engine, "before_cursor_execute", record)


def _search(session) -> list:
    vector = [1.0] + [0.0] * (get_settings().embedding_dimension - 1)
    return queries.nearest(session, "search-session-owner", vector, 5, queries.ItemFilters())


def test_a_search_on_a_connection_with_the_role_defaults_sets_nothing(hnsw_plan):
    with session_scope() as session:
        assert _search(session) == []
        assert session.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "relaxed_order"
    assert hnsw_plan and not [s for s in hnsw_plan if "set_config" in s or s.lstrip().upper().startswith("SET")]


def test_a_search_on_a_stale_connection_sets_the_hnsw_settings_for_its_transaction(hnsw_plan, caplog):
    with session_scope() as session:
        session.execute(text("SET LOCAL hnsw.iterative_scan = off"))  # as a connection older than migration 0003
        session.execute(text("SET LOCAL hnsw.ef_search = 10"))
        assert _search(session) == []
        assert session.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "relaxed_order"
        assert session.execute(text("SHOW hnsw.ef_search")).scalar_one() == "40"
    assert "lacks the role's HNSW defaults" in caplog.text
    with session_scope() as session:  # transaction-local: the next transaction has the role's values again
        assert session.execute(text("SHOW hnsw.iterative_scan")).scalar_one() == "relaxed_order"


def test_the_search_settings_are_the_ones_migration_0003_makes_role_defaults():
    spec = importlib.util.spec_from_file_location("migration_0003", MIGRATION_0003)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    role = {name: value for name, value in migration.role_defaults().items() if name.startswith("hnsw.")}
    assert role == queries.HNSW_SESSION
