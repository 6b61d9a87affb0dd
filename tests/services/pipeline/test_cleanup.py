"""Cleanup on a seeded mess: exactly what should go goes (objects before rows), a dry run removes
nothing, work per run is bounded, and both schedule payloads reach it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.core.models import ItemStatus, Stage
from services.core.storage import thumbnail_key
from tests.services.pipeline.conftest import load_item, make_item, object_exists, put_object

OWNER = "cleanup-owner"
NOW = datetime.now(UTC) + timedelta(hours=2)  # every object written by this test is > 1 hour old
DAY = timedelta(days=1)


def with_objects(item, thumbnails: bool = False):
    put_object(item.original_key, b"original")
    if thumbnails:
        for size in (256, 1024):
            put_object(thumbnail_key(item.owner_id, item.id, size), b"thumb", "image/webp")
    return item


@pytest.fixture(scope="module")
def mess(env):
    old = NOW - 2 * DAY
    items = {
        "ready": with_objects(make_item(OWNER, status=ItemStatus.ready, created_at=old), thumbnails=True),
        "deleted": with_objects(
            make_item(OWNER, status=ItemStatus.deleted, deleted_at=NOW - timedelta(minutes=5)), thumbnails=True
        ),
        "failed_expired": with_objects(
            make_item(OWNER, status=ItemStatus.failed, failed_stage=Stage.process, updated_at=NOW - 40 * DAY)
        ),
        "failed_recent": with_objects(
            make_item(OWNER, status=ItemStatus.failed, failed_stage=Stage.analyze, updated_at=NOW - 2 * DAY)
        ),
        "pending_no_object": make_item(OWNER, status=ItemStatus.pending, created_at=old),
        "pending_with_object": with_objects(  # waited past the pending timeout (its floor: hours)
            make_item(OWNER, status=ItemStatus.pending, created_at=old, updated_at=old)
        ),
        "pending_young": make_item(OWNER, status=ItemStatus.pending, created_at=NOW - timedelta(minutes=30)),
    }
    ready = items["ready"]
    orphans = [
        f"uploads/{OWNER}/{uuid.uuid4()}/no-row.jpg",
        f"thumbnails/{OWNER}/{uuid.uuid4()}/256.webp",
        f"uploads/{OWNER}/{ready.id}/stray.jpg",  # beside a live item's original
        f"uploads/somebody-else/{ready.id}/photo.jpg",  # another owner's key for a live item
        "uploads/not-our-layout.jpg",
    ]
    for key in orphans:
        put_object(key, b"orphan")
    foreign = "exports/report.csv"  # outside our prefixes: never ours to judge
    put_object(foreign, b"a,b")
    return items, orphans, foreign


def cleanup(env, now=NOW, **overrides):
    from services.cleanup.logic import Cleanup

    settings = env.model_copy(update={"cleanup_orphan_hours": 1, **overrides})
    return Cleanup(settings=settings, now=now)


EXPECTED = {
    "deleted_items": 1,
    "expired_failed": 1,
    "stale_pending": 1,
    "timed_out": 1,
    "orphan_objects": 5,
    "objects_removed": 3 + 1 + 5,  # deleted item's original and thumbnails, expired original, orphans
}


def all_keys():
    from services.core.storage import get_storage

    storage = get_storage()
    return {o["Key"] for prefix in ("uploads/", "thumbnails/", "exports/") for o in storage.list(prefix)}


def test_dry_run_counts_everything_and_removes_nothing(env, mess):
    items, orphans, foreign = mess
    keys_before = all_keys()

    report = cleanup(env).run(dry_run=True).as_dict()

    assert report == {"dry_run": True, **EXPECTED}
    assert all_keys() == keys_before
    assert all(load_item(item.id) is not None for item in items.values())


def test_cleanup_removes_exactly_the_mess(env, mess):
    items, orphans, foreign = mess

    report = cleanup(env).run(dry_run=False).as_dict()

    assert report == {"dry_run": False, **EXPECTED}
    gone = {"deleted", "failed_expired", "pending_no_object"}
    for name, item in items.items():
        assert (load_item(item.id) is None) == (name in gone), name
    for name in ("deleted", "failed_expired"):
        assert not any(f"/{items[name].id}/" in key for key in all_keys())
    assert not any(object_exists(key) for key in orphans)
    ready = items["ready"]
    assert object_exists(ready.original_key) and object_exists(thumbnail_key(OWNER, ready.id, 1024))
    assert object_exists(items["failed_recent"].original_key)
    assert object_exists(items["pending_with_object"].original_key)
    # Its processing never finished (crashed, timed out): failed with a reason, so retry can resume it.
    timed_out = load_item(items["pending_with_object"].id)
    assert (timed_out.status, timed_out.failed_stage) == (ItemStatus.failed, Stage.process)
    assert "process stage did not finish within" in timed_out.failure_reason
    assert object_exists(foreign)

    again = cleanup(env).run(dry_run=False).as_dict()
    assert again == {"dry_run": False, **dict.fromkeys(EXPECTED, 0)}


def test_young_orphans_are_left_alone(env):
    key = f"uploads/{OWNER}/{uuid.uuid4()}/just-uploaded.jpg"
    put_object(key, b"fresh")
    report = cleanup(env, now=datetime.now(UTC), cleanup_orphan_hours=24).run(dry_run=False)
    assert report.orphan_objects == 0
    assert object_exists(key)


def test_work_per_run_is_bounded_by_cleanup_batch(env):
    owner = f"batch-{uuid.uuid4()}"
    doomed = [with_objects(make_item(owner, status=ItemStatus.deleted)) for _ in range(3)]

    first = cleanup(env, cleanup_batch=2).run(dry_run=False)
    second = cleanup(env, cleanup_batch=2).run(dry_run=False)

    assert (first.deleted_items, second.deleted_items) == (2, 1)
    assert all(load_item(item.id) is None for item in doomed)
    assert not any(object_exists(item.original_key) for item in doomed)


SCHEDULED_RULE = {
    "version": "0",
    "id": "89d1a02d-5ec7-412e-82f5-13505f849b41",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-30T01:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/collections-dev-cleanup"],
    "detail": {},
}
SCHEDULER_ENVELOPE = {
    **SCHEDULED_RULE,
    "source": "aws.scheduler",
    "resources": ["arn:aws:scheduler:us-east-1:123456789012:schedule/default/collections-dev-cleanup"],
    "detail": '{"dry_run": true}',  # Scheduler hands the detail over as a JSON string
}


@pytest.mark.parametrize(
    ("event", "dry_run"),
    [(SCHEDULED_RULE, False), (SCHEDULER_ENVELOPE, True), ({}, False), ({"dry_run": True}, True), (None, False)],
    ids=["eventbridge-rule", "scheduler-envelope", "scheduler-default-input", "direct-dry-run", "no-payload"],
)
def test_handler_accepts_every_schedule_payload(env, event, dry_run):
    from services.cleanup.handler import handler

    assert handler(event, None)["dry_run"] is dry_run


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({**SCHEDULED_RULE, "detail": "not json"}, "detail is not JSON"),
        ({**SCHEDULED_RULE, "detail": "[1]"}, "detail must be a JSON object"),
    ],
)
def test_handler_rejects_malformed_schedule_payloads_clearly(env, event, message):
    from services.cleanup.handler import handler

    with pytest.raises(ValueError, match=message):
        handler(event, None)


def test_an_item_waiting_at_a_stage_is_failed_only_past_the_pending_timeout_floor(env):
    """Lambda may deliver a throttled event up to the maximum event age late: an item just under the floor
    (the default timeout) may only be queued and stays; one past it is failed."""
    from services import catalog

    assert env.pending_timeout_minutes == catalog.pending_timeout_floor_minutes(env.stage_lease_s)
    timeout = timedelta(minutes=env.pending_timeout_minutes)
    assert timeout >= timedelta(seconds=catalog.ASYNC_MAX_EVENT_AGE_S)
    sent = datetime.now(UTC)
    item = make_item("floor-owner", status=ItemStatus.processed, updated_at=sent, thumbnail_keys={"256": "k"})

    cleanup(env, now=sent + timeout - timedelta(minutes=1)).run(dry_run=False)
    assert load_item(item.id).status == ItemStatus.processed  # its event may still come
    cleanup(env, now=sent + timeout + timedelta(minutes=1)).run(dry_run=False)
    failed = load_item(item.id)
    assert (failed.status, failed.failed_stage) == (ItemStatus.failed, Stage.analyze)


def test_uploads_are_checked_in_s3_with_no_row_locked(env, db_url):
    """One HEAD per pending candidate: none of them may run while cleanup holds rows FOR UPDATE."""
    import psycopg

    from services.cleanup.logic import Cleanup
    from services.core.storage import get_storage

    storage = get_storage()
    libpq = db_url.replace("postgresql+psycopg://", "postgresql://")
    locked_during_head: list[str] = []

    class Watching:
        def __getattr__(self, name):
            return getattr(storage, name)

        def head(self, key):
            with psycopg.connect(libpq, autocommit=True) as conn:
                try:
                    conn.execute("SET lock_timeout = '100ms'")
                    conn.execute("SELECT 1 FROM items WHERE original_key = %s FOR UPDATE NOWAIT", (key,))
                except psycopg.errors.LockNotAvailable:
                    locked_during_head.append(key)
            return storage.head(key)

    waited = datetime.now(UTC) - 2 * DAY
    queued = with_objects(make_item("head-owner", status=ItemStatus.pending, created_at=waited, updated_at=waited))
    never = make_item("head-owner", status=ItemStatus.pending, created_at=waited, updated_at=waited)
    settings = env.model_copy(update={"cleanup_orphan_hours": 1})
    Cleanup(settings=settings, storage=Watching(), now=datetime.now(UTC)).run(dry_run=False)

    assert locked_during_head == []
    assert load_item(queued.id).status == ItemStatus.failed  # its upload exists: timed out
    assert load_item(never.id) is None  # no upload ever came: a stale pending row
