"""Every error is JSON of one shape: {"error": {"code": ..., "message": ..., "details"?: [...]}}.

User input never reaches a 500: validation problems are 400/415/422, auth problems 401, missing
(or someone else's) items 404, state conflicts 409, oversized uploads 413, per-user limits 429.
A database that cannot be reached (or a pool with no connection to spare) is a 503 with
Retry-After, logged as one line at most every OUTAGE_LOG_EVERY_S, never as a traceback per request
(which, with SQL and vectors in it, grew the dev log by megabytes a second). The catch-all 500
exists for our own bugs: one log record with the traceback, and nothing about internals in the body.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.core.auth import AuthError, AuthNotConfigured

log = logging.getLogger(__name__)

OUTAGE_LOG_EVERY_S = 10.0
DATABASE_RETRY_AFTER_S = 5

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


# What each error status means, for the OpenAPI document (every body is schemas.ErrorResponse).
ERROR_DESCRIPTIONS = {
    400: "Malformed JSON, an invalid cursor or an empty date range",
    401: "Missing, invalid or expired access token",
    404: "No such item of the caller's (another user's item is indistinguishable from a missing one)",
    409: "The item is not in a state that allows this",
    413: "Declared size over the upload limit",
    415: "The body is not JSON",
    422: "Invalid parameters or body; `details` lists each problem",
    429: "A per-user limit is reached; Retry-After says when to try again",
    500: "Unexpected error (logged); the body says nothing about internals",
    503: "A dependency (database, event bus, search provider) is unavailable; Retry-After when known",
}
# Every authenticated route can answer these: token problems, invalid input, our bugs, a database outage.
AUTHENTICATED = (401, 422, 500, 503)


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: the error body and meaning of each status it can return.
    `descriptions` (keyed "s409") override the generic text."""
    from services.api.schemas import ErrorResponse

    return {
        status: {"model": ErrorResponse, "description": descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status])}
        for status in sorted(set(statuses))
    }


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str = "item") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def invalid(message: str, status: int = 422) -> ApiError:
    return ApiError(status, HTTP_CODES[status], message)


# Retry-After when a provider failed in a way that says nothing about when it will work again.
UNKNOWN_RECOVERY_RETRY_AFTER_S = 30


def retry_later(status: int, message: str, retry_after_s: float) -> ApiError:
    """429 or 503 with Retry-After (whole seconds, at least 1; a value that is not a finite number: 30)."""
    seconds = max(1, math.ceil(retry_after_s)) if math.isfinite(retry_after_s) else UNKNOWN_RECOVERY_RETRY_AFTER_S
    return ApiError(status, HTTP_CODES[status], message, headers={"Retry-After": str(seconds)})


def search_unavailable(retry_after_s: float | None = None) -> ApiError:
    """503 for search when the query cannot be embedded: the provider is down, slow or refusing us."""
    return retry_later(
        503, "search is unavailable right now; try again shortly", retry_after_s or UNKNOWN_RECOVERY_RETRY_AFTER_S
    )


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, headers: dict | None = None
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    # ensure_ascii: whatever odd text a message quotes back, the body stays encodable JSON.
    return Response(
        json.dumps({"error": body}, ensure_ascii=True), status, headers=headers, media_type="application/json"
    )


def _location(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _validation_response(request: Request, error: RequestValidationError) -> Response:
    errors = error.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    content_type = request.headers.get("content-type", "")
    body_expected_object = any(
        tuple(e.get("loc", ())) == ("body",) and e.get("type") in ("model_attributes_type", "dict_type") for e in errors
    )
    if body_expected_object and content_type and "json" not in content_type.lower():
        return error_response(
            415, "unsupported_media_type", f"the body must be JSON (Content-Type: application/json), not {content_type}"
        )
    # No `input` echoed back: it may be large, and it is the caller's own data anyway.
    details = [
        {"location": _location(tuple(e.get("loc", ()))), "message": e.get("msg", ""), "type": e.get("type")}
        for e in errors
    ]
    summary = "; ".join(f"{d['location']}: {d['message']}" for d in details[:3])
    return error_response(422, "invalid_request", summary or "invalid request", details)


class _OutageLog:
    """One warning for the first database failure, then at most one every OUTAGE_LOG_EVERY_S
    saying how many requests were answered 503 meanwhile."""

    def __init__(self, every_s: float = OUTAGE_LOG_EVERY_S):
        self.every_s = every_s
        self._lock = threading.Lock()
        self._last: float | None = None
        self._suppressed = 0

    def report(self, request: Request, error: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last < self.every_s:
                self._suppressed += 1
                return
            suppressed, self._suppressed, self._last = self._suppressed, 0, now
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [""])[0][:300]
        log.warning(
            "database unavailable (%s on %s %s): %s; %d more request(s) answered 503 since the last report",
            type(cause).__name__,
            request.method,
            request.url.path,
            first_line,
            suppressed,
        )


_outage = _OutageLog()


def _is_outage(error: Exception) -> bool:
    """Failures of the database's availability, not of our SQL: connection refused or lost, a pool
    with no connection to spare, a server shutting down or in recovery."""
    if isinstance(error, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError))
    return False


class CatchAll:
    """The last resort, as ASGI middleware inside Starlette's ServerErrorMiddleware: an unexpected
    exception becomes our JSON 500 with exactly one log record. (An exception handler for
    `Exception` would run inside ServerErrorMiddleware, which logs the traceback a second time.)"""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # nothing better to do than drop the connection
                return
            await error_response(500, "internal_error", "internal error; it has been logged")(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(CatchAll)

    @app.exception_handler(sa_exc.SQLAlchemyError)
    async def _database_error(request: Request, error: sa_exc.SQLAlchemyError) -> Response:
        if not _is_outage(error):
            raise error  # our bug: CatchAll logs it once and answers 500
        _outage.report(request, error)
        return error_response(
            503,
            "unavailable",
            "the database is unavailable; try again shortly",
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> Response:
        return error_response(error.status, error.code, error.message, error.details, headers=error.headers)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, error: AuthError) -> Response:
        return error_response(401, "unauthorized", str(error), headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(AuthNotConfigured)
    async def _auth_not_configured(request: Request, error: AuthNotConfigured) -> Response:
        log.error("authentication is not configured: %s", error)
        return error_response(503, "unavailable", "authentication is not configured on this server")

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> Response:
        return _validation_response(request, error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(error.status_code, "error")
        message = error.detail if isinstance(error.detail, str) else code.replace("_", " ")
        if error.status_code == 404:
            message = f"no route {request.method} {request.url.path}"
        return error_response(error.status_code, code, message, headers=getattr(error, "headers", None))
