"""The OpenAPI document tells the truth: every status a route answers (driven here through every
failure the code has: token, input, missing item, state, size, media type, limits, outages) is
declared for that route with our error body, and every declared error status is one the route
really answers (500, our own bugs, aside)."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from services import catalog
from services.core import database
from services.core.settings import get_settings

ROUTES = [r for r in catalog.API_ROUTES if r.path not in ("/openapi.json", "/docs", "/docs/{asset}")]


@pytest.fixture(scope="module")
def observed(client, alice, make_item, monkeypatch_module, sign):
    seen: dict[str, set[int]] = defaultdict(set)
    ready, pending = make_item(alice.sub, status="ready"), make_item(alice.sub, status="pending")

    def call(route, path_id=None, headers=None, **kwargs):
        path = route.path.replace("{item_id}", str(path_id or ready))
        response = client.request(route.method, path, headers=alice.headers if headers is None else headers, **kwargs)
        seen[route.route_key].add(response.status_code)
        return response

    body_routes = {"POST /uploads", "PATCH /items/{item_id}"}
    good_bodies = {
        "POST /uploads": {"filename": "a.png", "content_type": "image/png"},
        "PATCH /items/{item_id}": {"title": "t"},
    }
    # The success of each route: an item it can act on (deleting one must not take the others').
    success_ids = {
        "DELETE /items/{item_id}": make_item(alice.sub, status="ready"),
        "POST /items/{item_id}/retry": make_item(
            alice.sub, status="failed", failed_stage="process", failure_reason="-"
        ),
    }
    for route in ROUTES:
        key = route.route_key
        body = good_bodies.get(key)
        call(route, path_id=success_ids.get(key), json=body)  # the success
        call(route, headers={}, json=body)  # no token
        call(route, headers={"Authorization": "Bearer nope"}, json=body)
        if "{item_id}" in route.path:
            call(route, path_id="not-a-uuid", json=body)
            call(route, path_id=uuid.uuid4(), json=body)
        if key in body_routes:
            call(route, content=b"{", headers={**alice.headers, "Content-Type": "application/json"})
            call(route, data={"a": "b"})
            call(route, json={"unknown": 1})
        if route.method == "GET" and route.path != "/health":
            params = {"created_after": "2030-01-02", "created_before": "2030-01-01", "q": "x"}
            call(route, params=params)  # empty date range
            call(route, params={"k": "many", "limit": "many", "q": "x"})
        if key == "GET /items":
            call(route, params={"cursor": "garbage"})
    uploads = next(r for r in ROUTES if r.route_key == "POST /uploads")
    call(uploads, json={**good_bodies["POST /uploads"], "size": get_settings().max_upload_bytes + 1})
    call(next(r for r in ROUTES if r.route_key == "POST /items/{item_id}/retry"), path_id=ready)  # not failed: 409
    call(next(r for r in ROUTES if r.route_key == "GET /items/{item_id}/similar"), path_id=pending)  # not ready: 409

    # Limits: 429.
    limited = (
        "COLLECTIONS_LIMIT_PENDING_UPLOADS",
        "COLLECTIONS_LIMIT_SEARCHES_PER_MINUTE",
        "COLLECTIONS_LIMIT_REEMBEDS_PER_HOUR",
        "COLLECTIONS_LIMIT_RETRIES_PER_DAY",
    )
    for variable in limited:
        monkeypatch_module.setenv(variable, "1")
    get_settings.cache_clear()
    sub = str(uuid.uuid4())
    fresh = {"Authorization": f"Bearer {sign(sub=sub, username=sub)}"}
    search = next(r for r in ROUTES if r.route_key == "GET /search")
    patch, theirs = next(r for r in ROUTES if r.route_key == "PATCH /items/{item_id}"), make_item(sub, status="ready")
    for n in range(2):
        call(uploads, headers=fresh, json=good_bodies["POST /uploads"])
        call(search, headers=fresh, params={"q": "x"})
        call(patch, path_id=theirs, headers=fresh, json={"title": f"edit {n}"})
        retry = next(r for r in ROUTES if r.route_key == "POST /items/{item_id}/retry")
        call(retry, path_id=make_item(sub, status="failed", failed_stage="analyze", failure_reason="-"), headers=fresh)
    for variable in limited:
        monkeypatch_module.delenv(variable)

    # The database down: 503 everywhere.
    url = get_settings().database_url
    monkeypatch_module.setenv("DATABASE_URL", "postgresql+psycopg://nobody@/collections?host=/nonexistent")
    get_settings.cache_clear()
    database.reset()
    try:
        for route in ROUTES:
            call(route, json=good_bodies.get(route.route_key), params={"q": "x"})
    finally:
        monkeypatch_module.setenv("DATABASE_URL", url)
        get_settings.cache_clear()
        database.reset()
    return seen


@pytest.fixture(scope="module")
def declared(client) -> dict[str, set[int]]:
    document = client.get("/openapi.json").json()
    return {
        f"{method.upper()} {path}": {int(status) for status in operation["responses"]}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


@pytest.mark.parametrize("route", ROUTES, ids=[r.route_key for r in ROUTES])
def test_every_status_a_route_answers_is_declared(observed, declared, route):
    assert observed[route.route_key] - declared[route.route_key] == set()


@pytest.mark.parametrize("route", ROUTES, ids=[r.route_key for r in ROUTES])
def test_every_declared_status_is_one_the_route_answers(observed, declared, route):
    assert declared[route.route_key] - {500} - observed[route.route_key] == set(), observed[route.route_key]


def test_error_statuses_declare_our_error_body_not_fastapis(client):
    document = client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400 and path != "/health":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


# --- the README's route table -------------------------------------------------------------------
README = Path(__file__).resolve().parents[3] / "README.md"
_ROW = re.compile(r"^\| `(GET|POST|PATCH|DELETE|PUT) ([^`?]+)(?:\?[^`]*)?` \|(.*)$")


def _readme_rows() -> dict[tuple[str, str], str]:
    text = README.read_text()
    section = text[text.index("\n## HTTP API\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            rows[(match[1], match[2])] = line
    return rows


def test_the_readme_route_table_is_the_openapi_document(app):
    """Every operation of the schema has its row, with the schema's path, and each row names every query
    parameter and request body field the operation takes; no row describes a route that does not exist."""
    document = app.openapi()
    rows = _readme_rows()
    operations = {(method.upper(), path): op for path, ops in document["paths"].items() for method, op in ops.items()}
    assert set(rows) == set(operations)
    schemas = document["components"]["schemas"]
    unnamed = {}
    for key, op in operations.items():
        names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            names += list(schemas[body["$ref"].rsplit("/", 1)[1]]["properties"])
        missing = [name for name in names if not re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", rows[key])]
        if missing:
            unnamed[key] = missing
    assert unnamed == {}
