"""A request's database connection goes back to the pool in the route's worker thread, never on the
event loop: closing a session that read anything ends its transaction with a ROLLBACK, a round trip
to PostgreSQL, and on the loop it stalls every other request (services/api/deps.py `threaded`)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import event


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def checkins():
    """Every connection given back to the pool: (on the event loop?, thread name)."""
    from services.core.database import get_engine

    seen: list[tuple[bool, str]] = []

    def checkin(dbapi_connection, connection_record) -> None:
        seen.append((_on_event_loop(), threading.current_thread().name))

    engine = get_engine()
    event.listen(engine, "checkin", checkin)
    yield seen
    event.remove(engine, "checkin", checkin)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/items", None),
        ("GET", "/items/00000000-0000-4000-8000-000000000000", None),
        ("GET", "/search?q=red", None),
        ("POST", "/uploads", {"filename": "a.jpg", "content_type": "image/jpeg"}),
    ],
)
def test_the_connection_is_given_back_off_the_event_loop(client, alice, checkins, method, path, body):
    response = client.request(method, path, headers=alice.headers, json=body)
    assert response.status_code in (200, 201, 404), response.text
    assert checkins, "the route took no connection: nothing proves where it went back"
    assert [on_loop for on_loop, _ in checkins] == [False] * len(checkins), checkins
