"""How requests hold database connections (services/api/deps.py `threaded`, services/local/dev.py).

- A request's connection goes back to the pool in the route's worker thread, never on the event loop:
  closing a session that read anything ends its transaction with a ROLLBACK, a round trip to
  PostgreSQL, and on the loop it stalls every other request.
- Many more concurrent requests than threads and connections never starve: a request holding a
  connection never waits for a thread (plain `def` routes did, and `make dev` stalled at 50 clients
  with `QueuePool limit ... reached` after 30 s).
- `make dev` sizes its pool to its threads."""

from __future__ import annotations

import asyncio
import threading

import httpx
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


def test_many_more_requests_than_threads_and_connections_all_succeed(app, alice, monkeypatch):
    """40 concurrent requests, 2 worker threads, 2 connections and no overflow; a connection waited for
    over 2 s would be a 500 (the pool's timeout), so starvation cannot hide as slowness."""
    import anyio.to_thread
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    from services.api import deps
    from services.core.database import database_url

    engine = create_engine(database_url(), pool_size=2, max_overflow=0, pool_timeout=2)
    monkeypatch.setattr(deps, "get_sessionmaker", lambda: sessionmaker(bind=engine, expire_on_commit=False))

    async def flood() -> list[int]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=alice.headers) as http:
            paths = ["/items", "/items/00000000-0000-4000-8000-000000000000", "/search?q=red"] * 14
            responses = await asyncio.gather(*(http.get(path) for path in paths[:40]))
        return [response.status_code for response in responses]

    try:
        statuses = asyncio.run(flood())
    finally:
        engine.dispose()
    assert sorted(set(statuses)) == [200, 404], statuses
    assert engine.pool.checkedout() == 0


def test_make_dev_has_a_connection_for_every_thread_that_can_hold_one(monkeypatch):
    from services import catalog
    from services.local import dev

    for variable in ("COLLECTIONS_DB_POOL_SIZE", "COLLECTIONS_DB_MAX_OVERFLOW"):
        monkeypatch.delenv(variable, raising=False)
    pool = dev._dev_pool()
    worker_threads = sum(1 for function in catalog.FUNCTIONS if function.triggers)
    assert int(pool["COLLECTIONS_DB_POOL_SIZE"]) >= dev.DEV_API_THREADS + worker_threads


def test_connections_are_pinged_before_use_except_on_make_devs_local_server(monkeypatch):
    """On Lambda a thawed container's connections may have been closed by the server: ping first. The
    dev server's local PostgreSQL keeps them (and `make dev` stops if it dies): no extra round trip."""
    from services.core.database import make_engine
    from services.core.settings import Settings
    from services.local import dev

    url = "postgresql://u:p@127.0.0.1:1/x"
    assert make_engine(url, Settings(_env_file=None)).pool._pre_ping is True
    monkeypatch.delenv("COLLECTIONS_DB_POOL_PRE_PING", raising=False)
    for variable, value in dev._dev_pool().items():
        monkeypatch.setenv(variable, value)
    assert make_engine(url, Settings(_env_file=None)).pool._pre_ping is False
