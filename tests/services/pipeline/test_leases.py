"""Stage leases (services/core/stage_runner.py) against the real database: one model call per item
whatever the deliveries, a crashed stage's lease expires and a redelivery finishes the item, no
connection is held (let alone a transaction) while the model answers, cleanup respects live leases
and fails items that waited too long, and retry resumes them."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import text

from services.core.ai.local import LocalEmbedder
from services.core.contracts import ImageAnalyzed
from services.core.models import ItemStatus, Stage
from services.core.stage_runner import StageBusy, StageRunner
from tests.services.pipeline.conftest import deliver_concurrently, load_item, make_item, pipeline_event, worked_once


class StubEmbedder:
    """The local embedder, counting its calls; `gate` (when set) holds each call until it is set."""

    model = "stub-embedder"

    def __init__(self, gate: threading.Event | None = None, error: Exception | None = None):
        self.calls = 0
        self.entered = threading.Event()
        self.gate = gate
        self.error = error
        self._local = LocalEmbedder(1024)
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30), "the test never opened the gate"
        else:
            time.sleep(0.2)  # long enough for concurrent deliveries to meet the lease
        if self.error is not None:
            raise self.error
        return self._local.embed_documents(texts)


@pytest.fixture
def embed_with(env, publisher):
    from services.embedder.logic import ItemEmbedder

    return lambda model: ItemEmbedder(embedder=model, publisher=publisher)


@pytest.fixture
def short_lease(env, monkeypatch):
    """Leases of one second (COLLECTIONS_STAGE_LEASE_S), so a test can wait one out."""
    from services.core.settings import get_settings

    monkeypatch.setenv("COLLECTIONS_STAGE_LEASE_S", "1")
    get_settings.cache_clear()
    yield 1
    monkeypatch.delenv("COLLECTIONS_STAGE_LEASE_S")
    get_settings.cache_clear()


def analyzed_item(owner: str):
    return make_item(owner, status=ItemStatus.analyzed, title="A kite", analysis_model="local-vision-v1")


def event_for(item) -> ImageAnalyzed:
    return ImageAnalyzed(item_id=item.id, owner_id=item.owner_id, analysis_model="local-vision-v1")


def lease_of(item_id: uuid.UUID):
    item = load_item(item_id)
    return item.lease_owner, item.lease_expires_at


def test_concurrent_and_repeated_deliveries_call_the_model_once(embed_with, publisher, owner):
    item = analyzed_item(owner)
    model = StubEmbedder()
    embedder = embed_with(model)

    results = deliver_concurrently(lambda: embedder.run(event_for(item)), times=4)
    assert worked_once(results, "ready"), results
    assert "busy" in results  # the others met the live lease (with a 0.2 s model call, they all do)
    assert embedder.run(event_for(item)).result == "skipped"  # a later duplicate

    assert model.calls == 1
    assert len(publisher.of("ImageReady")) == 1
    assert load_item(item.id).status == ItemStatus.ready
    assert lease_of(item.id) == (None, None)  # advancing gives the lease up


def test_a_stage_that_dies_mid_call_leaves_a_lease_that_expires_and_a_redelivery_finishes(
    embed_with, publisher, owner, short_lease
):
    item = analyzed_item(owner)
    model = StubEmbedder()
    embedder = embed_with(model)
    # The first delivery claims the item, then its Lambda dies (timeout, crash): nothing releases the lease.
    claimed = StageRunner(embedder).claim(item.id, owner, uuid.uuid4())
    assert claimed.lease_owner is not None

    with pytest.raises(StageBusy):  # a redelivery while the lease is live waits for a later retry
        embedder.run(event_for(item))
    assert model.calls == 0

    time.sleep(short_lease + 0.2)
    assert embedder.run(event_for(item)).result == "ready"  # the retry after expiry finishes the item
    assert model.calls == 1
    assert (load_item(item.id).status, lease_of(item.id)) == (ItemStatus.ready, (None, None))


def test_a_transient_error_releases_the_lease_at_once(embed_with, owner):
    item = analyzed_item(owner)
    failing = StubEmbedder(error=TimeoutError("the model did not answer"))
    with pytest.raises(TimeoutError):
        embed_with(failing).run(event_for(item))
    assert (load_item(item.id).status, lease_of(item.id)) == (ItemStatus.analyzed, (None, None))
    assert embed_with(StubEmbedder()).run(event_for(item)).result == "ready"  # no wait for an expiry


def test_no_connection_is_held_while_the_model_answers(embed_with, env, owner):
    from services.core.database import get_engine

    item = analyzed_item(owner)
    gate = threading.Event()
    model = StubEmbedder(gate=gate)
    embedder = embed_with(model)
    outcome: dict[str, object] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=embedder.run(event_for(item)).result))
    worker.start()
    try:
        assert model.entered.wait(30)
        assert get_engine().pool.checkedout() == 0  # the stage's session is closed during the call
        libpq = env.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(libpq) as probe:
            held = probe.execute(
                "SELECT pid, state, query FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            ).fetchall()
        assert held == []
        lease_owner, expires = lease_of(item.id)
        assert lease_owner is not None and expires > datetime.now(UTC)  # the claim is the committed lease
    finally:
        gate.set()
        worker.join(timeout=30)
    assert outcome == {"result": "ready"}


def test_cleanup_never_deletes_an_item_under_a_live_lease(env, owner):
    from services.cleanup.logic import Cleanup
    from services.core.database import session_scope

    item = make_item(owner, status=ItemStatus.deleted, deleted_at=datetime.now(UTC) - timedelta(hours=1))

    def lease(expires_in_s: int) -> None:
        with session_scope() as session:
            session.execute(
                text(
                    "UPDATE items SET lease_owner = :owner, lease_expires_at = now() + make_interval(secs => :s)"
                    " WHERE id = :id"
                ),
                {"owner": uuid.uuid4(), "s": expires_in_s, "id": item.id},
            )

    lease(60)  # e.g. the analyzer, mid model call, when the user deleted the item
    Cleanup().run(dry_run=False)
    assert load_item(item.id) is not None  # left for the next run
    lease(-1)  # the stage died; its lease is over
    Cleanup().run(dry_run=False)
    assert load_item(item.id) is None


def set_lease_expiry(item_id: uuid.UUID, in_s: int) -> None:
    from services.core.database import session_scope

    with session_scope() as session:
        session.execute(
            text("UPDATE items SET lease_expires_at = now() + make_interval(secs => :s) WHERE id = :id"),
            {"s": in_s, "id": item_id},
        )


def test_an_item_whose_stage_died_is_failed_after_the_timeout_and_retry_finishes_it(
    embed_with, env, publisher, owner
):
    from services.cleanup.logic import Cleanup
    from services.core.database import session_scope
    from services.core.retry import retry_item

    item = analyzed_item(owner)
    embedder = embed_with(StubEmbedder())
    lease = uuid.uuid4()
    StageRunner(embedder).claim(item.id, owner, lease)  # and dies; no redelivery ever comes
    later = datetime.now(UTC) + timedelta(minutes=env.pending_timeout_minutes + 1)

    # Past the timeout but under a live lease: only the lease filter keeps the item from failing.
    set_lease_expiry(item.id, 60)
    Cleanup(now=later).run(dry_run=False)
    assert (load_item(item.id).status, lease_of(item.id)[0]) == (ItemStatus.analyzed, lease)
    set_lease_expiry(item.id, -1)  # the lease is over
    Cleanup(now=later).run(dry_run=False)

    failed = load_item(item.id)
    assert (failed.status, failed.failed_stage) == (ItemStatus.failed, Stage.embed)
    assert "embed stage did not finish" in failed.failure_reason
    assert lease_of(item.id) == (None, None)

    with session_scope() as session:
        retried = retry_item(session, item.id, publisher, owner_id=owner)
    assert retried.status == ItemStatus.analyzed
    (event,) = publisher.of("ImageAnalyzed")
    assert embedder.run(event).result == "ready"


class FakeLambdaContext:
    def __init__(self, remaining_ms: int):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_on_lambda_the_lease_outlives_the_deployed_invocation_not_the_catalogs_timeout(env, owner, monkeypatch):
    """A stack config may raise a stage's timeoutS (up to 900 s) past the catalog's: the lease follows the
    invocation's remaining time (Lambda context) plus the margin, not the catalog's timeout."""
    from services import catalog
    from services.core import stage_runner
    from services.core.database import session_scope
    from services.embedder import logic

    item = analyzed_item(owner)
    seen: dict[str, float] = {}

    class LeaseReading(StubEmbedder):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            with session_scope() as session:
                seen["lease_s"] = session.execute(
                    text("SELECT extract(epoch FROM lease_expires_at - now()) FROM items WHERE id = :id"),
                    {"id": item.id},
                ).scalar()
            return super().embed_documents(texts)

    monkeypatch.setattr(logic, "get_embedder", lambda *args, **kwargs: LeaseReading())
    deployed_s = 900
    assert catalog.function("embedder").timeout_s < deployed_s
    context = FakeLambdaContext(deployed_s * 1000 - 1500)  # the invocation has just begun
    outcome = stage_runner.run_event("embed", pipeline_event(event_for(item)), context)
    assert outcome["result"] == "ready"
    margin = stage_runner.LEASE_MARGIN_S
    assert deployed_s - 5 + margin <= float(seen["lease_s"]) <= deployed_s + margin

    # Without a context (local runtime, tests): the catalog's timeout plus the margin.
    embed = catalog.stage("embed")
    assert stage_runner.lease_seconds(embed) == catalog.function("embedder").timeout_s + margin
    # A configured lease can only lengthen the context's.
    longer = env.model_copy(update={"stage_lease_s": 5000})
    assert stage_runner.lease_seconds(embed, longer, FakeLambdaContext(10_000)) == 5000
    assert stage_runner.lease_seconds(embed, longer.model_copy(update={"stage_lease_s": 1}),
                                      FakeLambdaContext(10_000)) == 10 + margin


def test_a_holder_whose_lease_expired_and_was_claimed_again_can_neither_advance_nor_fail(
    embed_with, publisher, owner
):
    from services.core.stage_runner import Done

    item = analyzed_item(owner)
    runner = StageRunner(embed_with(StubEmbedder()))
    first = uuid.uuid4()
    claimed = runner.claim(item.id, owner, first)
    set_lease_expiry(item.id, -1)  # the first holder outlived its lease (it should not, but say it did)
    second = uuid.uuid4()
    assert runner.claim(item.id, owner, second).lease_owner == second  # a redelivery took the item

    assert runner.advance(claimed, first, Done({"embedding_model": "late"})).result == "skipped"
    assert runner.fail(claimed, first, "too late").result == "skipped"
    stored = load_item(item.id)
    assert (stored.status, stored.lease_owner, stored.embedding_model) == (ItemStatus.analyzed, second, None)
    assert publisher.of("ImageReady") == [] and publisher.of("ItemFailed") == []
