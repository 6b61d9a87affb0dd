"""Search against Voyage down, rate limited or slow: the real client (services/core/ai/voyage.py)
against a fake Voyage on 127.0.0.1. Search answers 503 with Retry-After after at most one retry,
never 500, and never sleeps through Voyage's Retry-After inside the request."""

from __future__ import annotations

import base64
import struct
import time

import pytest

from services.api.deps import get_embedder
from services.core.ai.voyage import VoyageEmbedder
from services.core.settings import get_settings
from tests.services.pipeline.conftest import FakeAPI


def _answer(request: dict) -> dict:
    dimension = get_settings().embedding_dimension
    vector = struct.pack(f"<{dimension}f", *([1.0] + [0.0] * (dimension - 1)))
    return {"object": "list", "data": [{"index": 0, "embedding": base64.b64encode(vector).decode()}], "model": "m"}


def _slow(request: dict) -> dict:
    time.sleep(0.6)  # longer than the query timeout set below
    return _answer(request)


@pytest.fixture(scope="module")
def voyage_api():
    api = FakeAPI()
    yield api
    api.stop()


@pytest.fixture
def voyage_search(app, voyage_api):
    settings = get_settings().model_copy(
        update={"voyage_base_url": voyage_api.url + "/v1", "query_embedding_timeout_s": 0.3}
    )
    embedder = VoyageEmbedder(settings, "pa-test-key")
    app.dependency_overrides[get_embedder] = lambda: embedder
    yield voyage_api
    app.dependency_overrides.pop(get_embedder)


def _search(client, alice):
    return client.get("/search", headers=alice.headers, params={"q": "a red kite"})


def test_voyage_answering_searches_normally(client, alice, voyage_search):
    voyage_search.script((200, _answer))
    response = _search(client, alice)
    assert response.status_code == 200, response.text
    assert voyage_search.requests[0]["json"]["input_type"] == "query"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_voyage_down_is_503_after_one_retry(client, alice, voyage_search, status):
    voyage_search.script((status, {"detail": "internal provider text that users must not see"}))
    response = _search(client, alice)
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "unavailable",
        "message": "search is unavailable right now; try again shortly",
    }
    assert int(response.headers["retry-after"]) >= 1
    assert len(voyage_search.requests) == 2  # one attempt, one retry


def test_voyage_rate_limit_is_passed_on_not_slept_through(client, alice, voyage_search):
    voyage_search.script((429, {"detail": "rate limited"}, {"Retry-After": "1800"}))
    response = _search(client, alice)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1800"
    assert len(voyage_search.requests) == 2


@pytest.mark.parametrize(
    "header, expected",
    [
        ("nan", "5"),
        ("inf", "5"),
        ("-5", "5"),
        ("2.5", "5"),
        ("soon", "5"),
        ("Wed, 21 Oct 2015 07:28:00", "5"),  # no zone: not an HTTP-date
        ("Wed, 21 Oct 2015 07:28:00 GMT", "1"),  # in the past
        ("99999999", "3600"),
    ],
)
def test_odd_retry_after_from_voyage_is_still_a_503(client, alice, voyage_search, header, expected):
    """Whatever Voyage puts in Retry-After (RFC 9110: delay-seconds is digits only, or an HTTP-date),
    search answers 503 with a whole number of seconds within bounds, never 500."""
    voyage_search.script((429, {"detail": "rate limited"}, {"Retry-After": header}))
    response = _search(client, alice)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == expected


def test_voyage_recovering_on_the_retry_searches_normally(client, alice, voyage_search):
    voyage_search.script((503, {"detail": "busy"}), (200, _answer))
    assert _search(client, alice).status_code == 200
    assert len(voyage_search.requests) == 2


def test_voyage_too_slow_is_503(client, alice, voyage_search):
    voyage_search.script((200, _slow))
    response = _search(client, alice)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert len(voyage_search.requests) == 2  # the timed-out attempt and one retry


@pytest.mark.parametrize(
    "answer",
    [
        (401, {"detail": "Provided API key is invalid."}),
        (403, {"detail": "forbidden"}),
        (400, {"detail": "input too long"}),
        (422, {"detail": "unprocessable"}),
        (200, {"data": "not a list of embeddings"}),
        (200, {"object": "list"}),
    ],
    ids=["401", "403", "400", "422", "odd-data", "no-data"],
)
def test_any_other_voyage_failure_is_a_503_with_the_provider_text_in_one_log_record(
    client, alice, voyage_search, caplog, answer
):
    voyage_search.script(answer)
    response = _search(client, alice)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["message"] == "search is unavailable right now; try again shortly"
    assert int(response.headers["retry-after"]) >= 1
    failures = [r for r in caplog.records if r.name == "services.api.routes.search"]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_an_embedder_that_cannot_be_built_is_a_503(app, client, alice, monkeypatch):
    """E.g. Secrets Manager unreachable while the Voyage key is read."""
    import services.core.ai as ai

    def unreachable(settings=None):
        raise ConnectionError("Could not connect to the endpoint URL: secretsmanager")

    monkeypatch.setattr(ai, "get_embedder", unreachable)
    response = _search(client, alice)
    assert response.status_code == 503, response.text
    assert "secretsmanager" not in response.text


def test_a_bad_request_is_refused_before_the_embedder_is_built(client, alice, monkeypatch):
    """Validation first: building the embedder (which may read its key) happens in the route body."""
    import services.core.ai as ai

    built = []
    monkeypatch.setattr(ai, "get_embedder", lambda settings=None: built.append(1))
    response = client.get("/search", headers=alice.headers, params={"q": "x", "k": -1})
    assert response.status_code == 422, response.text
    assert built == []


@pytest.mark.parametrize("retry_after", [float("nan"), float("inf")])
def test_a_retry_after_that_is_not_a_finite_number_is_still_a_503(app, client, alice, retry_after):
    from services.core.ai import EmbedderUnavailable

    class Down:
        model = "down"

        def embed_query(self, text):
            raise EmbedderUnavailable("down", retry_after)

    app.dependency_overrides[get_embedder] = lambda: Down()
    try:
        response = _search(client, alice)
    finally:
        app.dependency_overrides.pop(get_embedder)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "30"


def test_the_query_embedding_budget_fits_the_api_functions_timeout():
    """The slowest search that still answers: the Voyage key read from a hung Secrets Manager (its cache
    expired), then two timed-out attempts at Voyage, with a second left to answer the 503.

    botocore's standard retry mode waits at most 1 s before its first retry, without a throttling
    response's x-amz-retry-after (botocore/retries/standard.py ExponentialBackoff: base 2, scale 1)."""
    from services import catalog
    from services.core import aws
    from services.core.ai.voyage import QUERY_RETRY_PAUSE_S
    from services.core.settings import Settings

    def bound(field: str) -> float:
        (limit,) = [m.le for m in Settings.model_fields[field].metadata if getattr(m, "le", None) is not None]
        return limit

    secrets = aws.CLIENT_CONFIG["secretsmanager"]
    tries = secrets["retries"]["total_max_attempts"]
    key_read = tries * (secrets["connect_timeout"] + secrets["read_timeout"]) + (tries - 1) * 1.0
    attempts = 1 + bound("query_embedding_max_retries")
    query = attempts * bound("query_embedding_timeout_s") + QUERY_RETRY_PAUSE_S
    api_timeout = next(f.timeout_s for f in catalog.FUNCTIONS if f.name == "api")
    assert key_read + query <= api_timeout - 1, (key_read, query, api_timeout)


def test_documents_keep_their_own_retry_budget(voyage_api):
    """The pipeline's embedder (60 s function) still retries embedding_max_retries times."""
    settings = get_settings().model_copy(update={"voyage_base_url": voyage_api.url + "/v1", "embedding_max_retries": 2})
    voyage_api.script((503, {}), (503, {}), (200, _answer))
    assert len(VoyageEmbedder(settings, "k").embed_documents(["x"])) == 1
    assert len(voyage_api.requests) == 3
