"""Property-based fuzzing of the OpenAPI document, in process against the ASGI app: whatever the
input, no 5xx, every status is declared for its route, and every 4xx is our JSON error shape.
Bounded: derandomized, few examples per route."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, status_code_conformance
from schemathesis.generation.modes import GenerationMode

from services import catalog

EXAMPLES_PER_ROUTE = 12
FUZZED = [r for r in catalog.API_ROUTES if r.path not in ("/openapi.json", "/docs", "/docs/{asset}")]
# Negative cases need something to break: every route but /health takes parameters or a body.
CASES = [(r, GenerationMode.POSITIVE) for r in FUZZED] + [
    (r, GenerationMode.NEGATIVE) for r in FUZZED if r.path != "/health"
]


@pytest.fixture(scope="module")
def api_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.mark.parametrize("route, mode", CASES, ids=[f"{r.route_key} {m}" for r, m in CASES])
def test_no_input_produces_a_server_error(api_schema, alice, route, mode):
    operation = api_schema[route.path][route.method]
    statuses: list[int] = []

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        response = case.call(headers=alice.headers)
        statuses.append(response.status_code)
        case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        if 400 <= response.status_code < 500:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and error["message"], response.text

    check()
    assert statuses  # the strategy produced requests
