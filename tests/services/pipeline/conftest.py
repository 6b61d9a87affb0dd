"""Pipeline test fixtures: items in the module's real database, objects on moto's S3, a recording
publisher, images made in memory, a fake HTTP API server for the real AI SDKs, and EventBridge
envelopes shaped as AWS (and moto) deliver them."""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from services import catalog


# --------------------------------------------------------------------------------------------
# Environment: a database and moto for every test module here
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(db_url, aws):
    """The module's database and moto bucket/bus, with settings and caches fresh."""
    from tests.conftest import reset_caches

    reset_caches()
    from services.core.settings import get_settings

    return get_settings()


class RecordingPublisher:
    """An EventPublisher that keeps what it is asked to publish (thread-safe)."""

    def __init__(self):
        self.details: list[Any] = []
        self._lock = threading.Lock()

    def publish(self, details) -> None:
        with self._lock:
            self.details.extend(details)

    def of(self, detail_type: str) -> list[Any]:
        return [d for d in self.details if detail_type == d.DETAIL_TYPE]


@pytest.fixture
def publisher() -> RecordingPublisher:
    return RecordingPublisher()


@pytest.fixture
def owner() -> str:
    """A fresh Cognito-like `sub` per test, so tests sharing a module database never collide."""
    return str(uuid.uuid4())


def make_item(owner_id: str, filename: str = "photo.jpg", **values: Any):
    """Insert an item row (pending unless told otherwise) and return it."""
    from services.core.database import session_scope
    from services.core.models import Item, ItemStatus
    from services.core.storage import upload_key

    item_id = values.pop("id", None) or uuid.uuid4()
    values.setdefault("status", ItemStatus.pending)
    # What the API records (one of the four types): the image processor checks the file against it.
    values.setdefault("content_type", "image/jpeg")
    item = Item(
        id=item_id, owner_id=owner_id, filename=filename, original_key=upload_key(owner_id, item_id, filename), **values
    )
    with session_scope() as session:
        session.add(item)
    return load_item(item_id)


def load_item(item_id: uuid.UUID):
    from services.core.database import session_scope
    from services.core.models import Item

    with session_scope() as session:
        return session.get(Item, item_id)


def put_object(key: str, data: bytes, content_type: str = "image/jpeg") -> None:
    from services.core.storage import get_storage

    get_storage().write(key, data, content_type)


def object_exists(key: str) -> bool:
    from services.core.storage import get_storage

    return get_storage().head(key) is not None


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------
def image_bytes(fmt: str = "JPEG", size=(640, 480), color=(200, 40, 40), mode: str = "RGB", **save: Any) -> bytes:
    from PIL import Image

    image = Image.new(mode, size, color)
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def textured_jpeg(size=(800, 600), seed: int = 1, quality: int = 90) -> bytes:
    """A JPEG with gradients and noise (a flat colour would make every image identical)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    x = np.linspace(0, 255, w)[None, :]
    y = np.linspace(0, 255, h)[:, None]
    base = np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), np.full((h, w), 128.0)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype("uint8")
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return out.getvalue()


def decode(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --------------------------------------------------------------------------------------------
# AWS-shaped events
# --------------------------------------------------------------------------------------------
def s3_event(bucket: str, key: str, size: int | None = 1234, moto_shape: bool = False) -> dict[str, Any]:
    """S3 "Object Created" delivered by EventBridge: the AWS documented shape, or moto's (whose
    `time` is a Unix timestamp and whose detail names the reason)."""
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {
            "key": key,
            "size": size,
            "etag": "b1946ac92492d2347c6235b4d2611184",
            "sequencer": "00617F08299329D189",
        },
        "request-id": "N4N7GDK58NMKJ12R",
        "requester": "123456789012",
        "source-ip-address": "1.2.3.4",
        "reason": "PutObject",
    }
    if moto_shape:
        detail["object"] = {"key": key, "size": size, "eTag": "b1946ac9", "version-id": None, "sequencer": "617f0829"}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": 1764460800.123 if moto_shape else "2026-11-30T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


def pipeline_event(detail) -> dict[str, Any]:
    """A pipeline event as EventBridge delivers it to a target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail.DETAIL_TYPE,
        "source": catalog.PIPELINE_SOURCE,
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": detail.model_dump(mode="json"),
    }


# --------------------------------------------------------------------------------------------
# A fake HTTP API for the real SDKs
# --------------------------------------------------------------------------------------------
class FakeAPI:
    """A threaded HTTP server on 127.0.0.1 answering scripted responses in order (the last one
    repeats; a callable body is computed from the request), recording every request (path,
    headers, JSON body and its bytes)."""

    def __init__(self):
        self.requests: list[dict[str, Any]] = []
        self._script: deque[tuple[int, Any, dict[str, str]]] = deque()
        self._last: tuple[int, Any, dict[str, str]] = (500, {"error": "no response scripted"}, {})
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                api.requests.append(
                    {
                        "path": self.path,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "json": json.loads(raw),
                        "body": raw,
                    }
                )
                status, body, headers = api._next()
                if callable(body):  # computed from the request, e.g. one embedding per input text
                    body = body(api.requests[-1]["json"])
                payload = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def script(self, *responses: tuple) -> None:
        """Each response: (status, body) or (status, body, headers)."""
        self.requests.clear()
        self._script.clear()
        for response in responses:
            status, body, *rest = response
            self._script.append((status, body, rest[0] if rest else {}))

    def _next(self):
        if self._script:
            self._last = self._script.popleft()
        return self._last

    def api_key(self, request: dict[str, Any]) -> str | None:
        headers = request["headers"]
        if "x-api-key" in headers:
            return headers["x-api-key"]
        auth = headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeAPI]:
    api = FakeAPI()
    yield api
    api.stop()


# --------------------------------------------------------------------------------------------
# Concurrent deliveries
# --------------------------------------------------------------------------------------------
def deliver_concurrently(deliver: Any, times: int = 3) -> list[str]:
    """Call `deliver()` (one delivery of the same event, returning an Outcome or its dict) from
    `times` threads at once: the outcomes' results, "busy" for a delivery that found another's live
    lease (StageBusy: on AWS, retried later), "error: ..." for anything else raised."""
    from services.core.stage_runner import StageBusy

    barrier = threading.Barrier(times)
    results: list[str] = []

    def one() -> None:
        barrier.wait()
        try:
            outcome = deliver()
            results.append(outcome["result"] if isinstance(outcome, dict) else outcome.result)
        except StageBusy:
            results.append("busy")
        except Exception as error:  # noqa: BLE001 - reported in the results
            results.append(f"error: {error!r}")

    threads = [threading.Thread(target=one) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def worked_once(results: list[str], result: str) -> bool:
    """Exactly one delivery did the work; every other one skipped or found the lease busy."""
    return results.count(result) == 1 and set(results) - {result} <= {"busy", "skipped"}
