"""Stage leases; the thumbnails for analysis and listing, recorded once. Live-safe (expand only).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

1. items.lease_owner / items.lease_expires_at: a stage claims an item in a short transaction
   (services/core/stage_runner.py) and calls its model with no transaction open, so no row lock is
   held across a model call. The partial index finds items whose lease is set (live or expired).
2. items.analysis_thumbnail_key / items.list_thumbnail_key: the image processor records which of
   the item's thumbnails the analyzer (and retry) read and which lists show, so nothing else picks a
   size. Existing rows: the largest and the smallest of their thumbnail_keys (backfilled here; rows an
   old image processor writes while versions are mixed are read through services.core.thumbnails).

It runs while the previous version serves (the deploy migrates before the aliases move), so it never
holds a lock the API would queue behind for long:
- The four columns come in one ALTER TABLE (nullable, no default: a catalog change, no rewrite) under
  `lock_timeout` LOCK_TIMEOUT, committed at once. If other transactions keep the table busy for that
  long the ALTER gives up instead of queueing every query behind its ACCESS EXCLUSIVE request; the
  migrate invocation then fails and can simply be run again (everything here is idempotent).
- The backfill runs in batches of BACKFILL_BATCH rows, each its own short transaction (autocommit),
  well within the role's statement_timeout (migration 0003).
- The index is built CONCURRENTLY (outside a transaction; an invalid one a failed attempt left is
  dropped first).

Expand/contract: `pipeline_locks` (migration 0003) is NOT dropped here. The previous version uses it and
stays live during a gradual release, and runs again after `collections-release rollback`; dropping it
would fail those with "relation does not exist". The new code never touches it. A later release drops it
once no version that uses it can run (README, "Database and RDS Proxy").
"""

from alembic import op
from sqlalchemy import text

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

LOCK_TIMEOUT = "5s"
BACKFILL_BATCH = 1000

ADD_COLUMNS = """
ALTER TABLE items
    ADD COLUMN IF NOT EXISTS lease_owner uuid,
    ADD COLUMN IF NOT EXISTS lease_expires_at timestamp with time zone,
    ADD COLUMN IF NOT EXISTS analysis_thumbnail_key varchar(1024),
    ADD COLUMN IF NOT EXISTS list_thumbnail_key varchar(1024)
"""

# One batch, by primary key after :after: per row, its largest thumbnail for analysis and its smallest
# for lists (the sizes are the keys); a key already recorded stays. Answers the batch's last id.
BACKFILL_BATCH_SQL = """
WITH batch AS (
    SELECT id FROM items WHERE CAST(:after AS uuid) IS NULL OR id > CAST(:after AS uuid) ORDER BY id LIMIT :n
), updated AS (
    UPDATE items SET
        analysis_thumbnail_key = COALESCE(analysis_thumbnail_key,
            (SELECT value FROM jsonb_each_text(thumbnail_keys) WHERE key ~ '^[0-9]+$'
             ORDER BY key::int DESC LIMIT 1)),
        list_thumbnail_key = COALESCE(list_thumbnail_key,
            (SELECT value FROM jsonb_each_text(thumbnail_keys) WHERE key ~ '^[0-9]+$'
             ORDER BY key::int ASC LIMIT 1))
    FROM batch
    WHERE items.id = batch.id AND items.thumbnail_keys IS NOT NULL AND items.thumbnail_keys <> '{}'::jsonb
      AND (items.analysis_thumbnail_key IS NULL OR items.list_thumbnail_key IS NULL)
)
SELECT id FROM batch ORDER BY id DESC LIMIT 1
"""

INDEX = "ix_items_leased"
CREATE_INDEX = (
    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON items (lease_expires_at) WHERE lease_owner IS NOT NULL"
)


def upgrade() -> None:
    # In env.py's transaction: the lock is taken only if it can be had within LOCK_TIMEOUT.
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(ADD_COLUMNS)
    # autocommit_block commits the transaction (the ALTER's lock goes) and runs each statement alone.
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        after = None
        while True:
            after = bind.execute(text(BACKFILL_BATCH_SQL), {"after": after, "n": BACKFILL_BATCH}).scalar()
            if after is None:
                break
        valid = bind.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:name)"), {"name": INDEX}
        ).scalar()
        if valid is False:  # a build that failed part-way; IF NOT EXISTS would keep it
            bind.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}"))
        # Outside a transaction SET LOCAL does nothing, so the session's statement_timeout is lifted for
        # the build and restored after. Through RDS Proxy the SET pins this one client's session (the
        # three statements stay on one connection); through a transaction pooler (PgBouncer) an idle
        # server connection is handed back to the same lone client, and RESET restores the role default.
        bind.execute(text("SET statement_timeout = 0"))
        try:
            bind.execute(text(CREATE_INDEX))
        finally:
            bind.execute(text("RESET statement_timeout"))
    # Alembic has begun a new transaction: later migrations of this run keep env.py's no-timeout setting.
    op.execute("SET LOCAL statement_timeout = 0")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    op.execute("SET LOCAL statement_timeout = 0")  # as env.py, in the transaction alembic began anew
    op.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    op.execute(
        "ALTER TABLE items DROP COLUMN IF EXISTS list_thumbnail_key, DROP COLUMN IF EXISTS analysis_thumbnail_key,"
        " DROP COLUMN IF EXISTS lease_expires_at, DROP COLUMN IF EXISTS lease_owner"
    )
