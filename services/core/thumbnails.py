"""Which of an item's thumbnails the analyzer (and retry) read and which lists show: one answer for all.

The image processor records both on the item (`analysis_thumbnail_key`, `list_thumbnail_key`) and every
reader goes through these two functions. The fallback exists for rows the processor of the previous
version wrote: migration 0006 backfills the rows that exist when it runs, but the previous version stays
live during a gradual release (and again after `collections-release rollback`) and keeps processing
uploads without recording the keys. For such a row the largest and the smallest of its thumbnail_keys
(the sizes are the keys) are what migration 0006 would have recorded, so it is analysed, retried and
listed instead of failing for good. It can go once no version that leaves the keys unset can run.
"""

from __future__ import annotations

from typing import Any


def _by_size(item: Any) -> list[str]:
    """The item's thumbnail keys, smallest size first (keys that are not a size are left out)."""
    keys = getattr(item, "thumbnail_keys", None) or {}
    return [keys[size] for size in sorted((s for s in keys if str(s).isdigit()), key=int)]


def analysis_thumbnail(item: Any) -> str | None:
    """The thumbnail the analyzer reads: the recorded one, else (a legacy row) the largest."""
    if item.analysis_thumbnail_key:
        return item.analysis_thumbnail_key
    sizes = _by_size(item)
    return sizes[-1] if sizes else None


def list_thumbnail(item: Any) -> str | None:
    """The thumbnail lists and search hits show: the recorded one, else (a legacy row) the smallest."""
    if item.list_thumbnail_key:
        return item.list_thumbnail_key
    sizes = _by_size(item)
    return sizes[0] if sizes else None
