"""The pipeline's row locks (services/core/pipeline_store.py, table pipeline_locks): a duplicate delivery
skips while the first holds the lock, a retry after the first failed takes it, lock rows go with their
item, and cleanup never waits for (or deadlocks with) a stage that is still at work."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from services.core import pipeline_store as store
from services.core.database import get_sessionmaker
from services.core.models import ItemStatus, Stage
from tests.services.pipeline.conftest import load_item, make_item


def _lock_rows(item_id: uuid.UUID) -> set[str]:
    with get_sessionmaker()() as session:
        rows = session.execute(text("SELECT name FROM pipeline_locks WHERE item_id = :i"), {"i": item_id})
        return {row.name for row in rows}


def test_a_duplicate_skips_while_the_first_holds_the_lock_and_a_retry_after_a_failure_takes_it(env, owner):
    item = make_item(owner, status=ItemStatus.processed)
    first, duplicate, retry = (get_sessionmaker()() for _ in range(3))
    try:
        assert store.try_lock_stage(first, Stage.analyze, item.id)
        assert not store.try_lock_stage(duplicate, Stage.analyze, item.id)  # skips, does not wait
        assert store.try_lock_stage(duplicate, Stage.embed, item.id)  # another stage's lock is another row
        duplicate.rollback()
        first.rollback()  # the first delivery failed: its lock goes with its transaction
        assert store.try_lock_stage(retry, Stage.analyze, item.id)
    finally:
        for session in (first, duplicate, retry):
            session.close()
    # The row was committed on its own, before the lock: it outlives the failed transaction.
    names = {store.stage_lock_name(Stage.analyze, item.id), store.stage_lock_name(Stage.embed, item.id)}
    assert _lock_rows(item.id) == names


def test_no_lock_row_for_an_item_that_does_not_exist(env):
    missing = uuid.uuid4()
    with get_sessionmaker()() as session:
        assert store.try_lock_stage(session, Stage.analyze, missing)  # nothing to contend for; claim() then skips
    assert _lock_rows(missing) == set()


def test_lock_rows_go_with_their_item(env, owner):
    item = make_item(owner)
    with get_sessionmaker()() as session, session.begin():
        assert store.try_lock_stage(session, Stage.process, item.id)
    assert _lock_rows(item.id)
    with get_sessionmaker()() as session, session.begin():
        session.execute(text("DELETE FROM items WHERE id = :i"), {"i": item.id})
    assert _lock_rows(item.id) == set()


def test_cleanup_leaves_an_item_a_stage_is_working_on_and_removes_it_once_the_stage_is_done(env, owner):
    """Deleting the item cascades to its lock rows: while a stage holds one, that DELETE would wait for
    the stage's whole transaction (a model call), then hit the statement timeout. Cleanup skips it."""
    from services.cleanup.logic import Cleanup

    item = make_item(owner, status=ItemStatus.deleted, deleted_at=datetime.now(UTC) - timedelta(hours=1))
    stage = get_sessionmaker()()
    try:
        assert store.try_lock_stage(stage, Stage.analyze, item.id)  # the analyzer, mid model call
        outcome: dict[str, object] = {}

        def clean() -> None:
            try:
                outcome["report"] = Cleanup().run(dry_run=False)
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = error

        cleaner = threading.Thread(target=clean)
        cleaner.start()
        cleaner.join(timeout=60)
        assert not cleaner.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert load_item(item.id) is not None  # left for the next run
        # The stage ends: its UPDATE finds the row still there, as before cleanup ran.
        assert store.advance(stage, item.id, ItemStatus.deleted, {}) is True
        stage.commit()
    finally:
        stage.close()
    Cleanup().run(dry_run=False)
    assert load_item(item.id) is None
    assert _lock_rows(item.id) == set()


def test_a_stage_locking_an_item_that_cleanup_deletes_meanwhile_finds_it_gone(env, owner):
    """The lock row's INSERT found the item, then waited on its deleter's row lock (the foreign key check):
    the item is gone when it goes on. That is a skip, not an IntegrityError."""
    item = make_item(owner, status=ItemStatus.deleted)
    deleter = get_sessionmaker()()
    outcome: dict[str, object] = {}

    def stage() -> None:
        with get_sessionmaker()() as session:
            try:
                outcome["locked"] = store.try_lock_stage(session, Stage.analyze, item.id)
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = error

    try:
        deleter.execute(text("SELECT 1 FROM items WHERE id = :i FOR UPDATE"), {"i": item.id})  # as cleanup does
        worker = threading.Thread(target=stage)
        worker.start()
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO pipeline_locks%'"
        )
        with get_sessionmaker()() as probe:
            while worker.is_alive() and not probe.execute(waiting).scalar_one():
                probe.rollback()
                threading.Event().wait(0.05)
        assert worker.is_alive(), outcome  # it must have waited for the deleter
        deleter.execute(text("DELETE FROM items WHERE id = :i"), {"i": item.id})
        deleter.commit()
        worker.join(timeout=60)
    finally:
        deleter.close()
    assert outcome == {"locked": True}
    assert _lock_rows(item.id) == set()
