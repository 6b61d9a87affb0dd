"""Migrations: upgrade from empty, downgrade to empty and up again, and the schema they build."""

import time

import psycopg
import pytest
from sqlalchemy import create_engine, inspect

from services.core import migrations


@pytest.fixture
def empty_db(pg):
    name = "migrations_roundtrip"
    pg.drop_database(name)
    url = pg.create_database(name, exist_ok=False)
    yield url
    pg.drop_database(name)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_from_empty_creates_items_with_indexes(empty_db):
    migrations.upgrade(empty_db)
    assert migrations.current(empty_db) == migrations.head()
    engine = create_engine(empty_db)
    try:
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("items")}
    finally:
        engine.dispose()
    expected = {"ix_items_owner_created", "ix_items_owner_sha256", "ix_items_embedding_hnsw",
                "ix_items_owner_ready_category"}
    assert expected <= indexes and "ix_items_owner_ready" not in indexes  # led by the same column


def test_upgrade_creates_the_usage_counters(empty_db):
    migrations.upgrade(empty_db)
    assert "usage_counters" in _tables(empty_db)


def test_hnsw_index_uses_cosine_ops(empty_db):
    migrations.upgrade(empty_db)
    libpq = empty_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as conn:
        (definition,) = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_items_embedding_hnsw'"
        ).fetchone()
    assert "hnsw" in definition and "vector_cosine_ops" in definition


def test_downgrade_round_trip(empty_db):
    migrations.upgrade(empty_db)
    migrations.downgrade(empty_db, "base")
    assert migrations.current(empty_db) is None
    assert "items" not in _tables(empty_db)
    migrations.upgrade(empty_db)
    assert "items" in _tables(empty_db)


def test_migrations_hash_is_stable():
    assert migrations.migrations_hash() == migrations.migrations_hash()
    assert len(migrations.migrations_hash()) == 64


def test_0006_records_existing_items_thumbnails_and_keeps_pipeline_locks(empty_db):
    migrations.upgrade(empty_db, "0005")
    libpq = empty_db.replace("postgresql+psycopg://", "postgresql://")
    keys = '{"256": "thumbnails/o/i/256.webp", "1024": "thumbnails/o/i/1024.webp", "64": "thumbnails/o/i/64.webp"}'
    with psycopg.connect(libpq) as conn:
        conn.execute(
            "INSERT INTO items (id, owner_id, status, filename, original_key, thumbnail_keys)"
            " VALUES (gen_random_uuid(), 'o', 'ready', 'a.jpg', 'uploads/o/i/a.jpg', %s::jsonb),"
            " (gen_random_uuid(), 'o', 'pending', 'b.jpg', 'uploads/o/j/b.jpg', NULL)",
            (keys,),
        )
        # More rows than one backfill batch (BACKFILL_BATCH): every batch is reached.
        conn.execute(
            "INSERT INTO items (id, owner_id, status, filename, original_key, thumbnail_keys)"
            " SELECT gen_random_uuid(), 'p', 'ready', 'c' || n || '.jpg', 'uploads/p/k/c' || n || '.jpg',"
            " jsonb_build_object('512', 'thumbnails/p/' || n || '/512.webp',"
            " '128', 'thumbnails/p/' || n || '/128.webp')"
            " FROM generate_series(1, 2500) AS n"
        )
    migrations.upgrade(empty_db)
    with psycopg.connect(libpq) as conn:
        rows = conn.execute(
            "SELECT filename, analysis_thumbnail_key, list_thumbnail_key, lease_owner FROM items"
            " WHERE owner_id = 'o' ORDER BY filename"
        ).fetchall()
        missing = conn.execute(
            "SELECT count(*) FROM items WHERE owner_id = 'p' AND (analysis_thumbnail_key NOT LIKE '%/512.webp'"
            " OR list_thumbnail_key NOT LIKE '%/128.webp' OR analysis_thumbnail_key IS NULL)"
        ).fetchone()[0]
        (valid,) = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_items_leased'::regclass"
        ).fetchone()
    assert rows == [
        ("a.jpg", "thumbnails/o/i/1024.webp", "thumbnails/o/i/64.webp", None),  # by size, not by text
        ("b.jpg", None, None, None),
    ]
    assert missing == 0 and valid
    # Expand only: the previous version (live during a gradual release, or after a rollback) uses it.
    assert "pipeline_locks" in _tables(empty_db)
    migrations.downgrade(empty_db, "0005")
    assert "pipeline_locks" in _tables(empty_db)
    migrations.upgrade(empty_db)  # and up again
    assert migrations.current(empty_db) == migrations.head()


def test_0006_gives_up_on_a_busy_table_instead_of_queueing_queries_and_can_be_rerun(empty_db):
    """ALTER TABLE waits for ACCESS EXCLUSIVE, and every later query on items would queue behind it: the
    migration's lock_timeout makes it fail fast instead; run again, it completes."""
    migrations.upgrade(empty_db, "0005")
    libpq = empty_db.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(libpq) as holder:
        holder.execute("SELECT count(*) FROM items")  # a long transaction holding ACCESS SHARE on items
        started = time.monotonic()
        with pytest.raises(Exception, match="lock timeout"):
            migrations.upgrade(empty_db)
        assert time.monotonic() - started < 30
        holder.rollback()
    assert migrations.current(empty_db) == "0005"
    migrations.upgrade(empty_db)
    assert migrations.current(empty_db) == migrations.head()
