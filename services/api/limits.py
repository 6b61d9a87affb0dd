"""Per-user limits, answered with 429 and Retry-After: uploads in flight, uploads per day, searches
per minute, re-embedding edits per hour, retries per day (settings.limit_*; 0 turns one off). Each bounds a paid call
an account can cause: Claude per upload and per retry of an analysis, Voyage per search and per edit
of what an item is embedded from.

The database is the state every Lambda instance shares. Counters are fixed windows in
`usage_counters`, bumped by one atomic upsert (no advisory locks, no session SET: both would pin
an RDS Proxy session). The upsert also row-locks the caller's counter until the transaction ends,
which serialises one user's concurrent uploads: the pending count read after it is exact.

A refused request is not counted: the caller raises, and the route's transaction rolls back.
Fixed windows admit up to twice a limit across a window boundary (the end of one minute and the
start of the next): a bound on cost per account, which is all these are for, not a smoothing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from services.api.errors import retry_later
from services.core.models import Item, ItemStatus
from services.core.settings import Settings

MINUTE_S = 60
HOUR_S = 3600
DAY_S = 24 * 3600

# The window starts at a multiple of its length since the epoch (minutes; UTC days), so every
# instance agrees on it; clock_timestamp(), not now(): the transaction may have started earlier.
_BUMP = text(
    """
    INSERT INTO usage_counters AS c (owner_id, kind, window_start, count)
    VALUES (:owner, :kind, to_timestamp(floor(extract(epoch FROM clock_timestamp()) / :window) * :window), 1)
    ON CONFLICT (owner_id, kind) DO UPDATE SET
        count = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.count + 1 ELSE 1 END,
        window_start = EXCLUDED.window_start
    RETURNING c.count, extract(epoch FROM c.window_start + make_interval(secs => :window) - clock_timestamp())
    """
)


def bump(session: Session, owner_id: str, kind: str, window_s: int) -> tuple[int, float]:
    """Count one `kind` for the owner in the current window: (count so far, seconds left in the window)."""
    used, remaining_s = session.execute(_BUMP, {"owner": owner_id, "kind": kind, "window": window_s}).one()
    return used, float(remaining_s)


def count(session: Session, owner_id: str, kind: str, window_s: int, limit: int, what: str) -> None:
    """Count one `kind` for the owner in the current window; 429 when that makes more than `limit`."""
    if limit <= 0:
        return
    used, remaining_s = bump(session, owner_id, kind, window_s)
    if used > limit:
        raise retry_later(429, f"limit reached: at most {limit} {what}; try again later", remaining_s)


def check_uploads(session: Session, owner_id: str, settings: Settings) -> None:
    per_day, in_flight = settings.limit_uploads_per_day, settings.limit_pending_uploads
    if per_day <= 0 and in_flight <= 0:
        return
    # The daily counter first, even when only the other limit is on: its row lock makes this user's
    # concurrent uploads take turns, so the pending count below is exact.
    used, remaining_s = bump(session, owner_id, "upload", DAY_S)
    if 0 < per_day < used:
        raise retry_later(429, f"limit reached: at most {per_day} uploads per day; try again later", remaining_s)
    if in_flight <= 0:
        return
    # Forms still usable (within their lifetime) and not yet processed: what an account holds open.
    lifetime = timedelta(seconds=settings.upload_url_ttl_s)
    pending, oldest = session.execute(
        select(func.count(), func.min(Item.created_at)).where(
            Item.owner_id == owner_id,
            Item.status == ItemStatus.pending,
            Item.created_at > func.clock_timestamp() - lifetime,
        )
    ).one()
    if pending >= in_flight:
        wait = session.scalar(select(func.extract("epoch", oldest + lifetime - func.clock_timestamp())))
        raise retry_later(
            429, f"limit reached: at most {in_flight} uploads in progress; finish or wait for them", float(wait or 1)
        )


def check_search(session: Session, owner_id: str, settings: Settings) -> None:
    count(session, owner_id, "search", MINUTE_S, settings.limit_searches_per_minute, "searches per minute")


def check_reembed(session: Session, owner_id: str, settings: Settings) -> None:
    """An edit that changes what a searchable item is embedded from: the embedder calls Voyage again.
    Refused (429, nothing saved) beyond the limit, so PATCH in a loop cannot run up the bill."""
    count(
        session,
        owner_id,
        "reembed",
        HOUR_S,
        settings.limit_reembeds_per_hour,
        "edits per hour of what search finds (title, description, tags)",
    )


def check_retries(session: Session, owner_id: str, settings: Settings) -> None:
    """A retry runs the failed stage again: a paid Claude analysis or Voyage embedding. An item that
    fails the same way every time must not become a loop of paid calls."""
    count(session, owner_id, "retry", DAY_S, settings.limit_retries_per_day, "retries per day")
