"""`make demo`: a few generated images uploaded as the demo user through the running API, the way
a browser does it (POST /uploads, then a multipart POST to the presigned URL), followed through the
pipeline until ready, then searched.

`ApiSession` is also what the end-to-end tests and the e2e benchmark drive the API with: it takes
any httpx.Client (a real one against `make dev`, or Starlette's TestClient in-process).
"""

from __future__ import annotations

import io
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

TERMINAL = ("ready", "failed")


@dataclass(frozen=True)
class Sample:
    name: str
    filename: str
    data: bytes
    content_type: str
    query: str  # a search that should find it first (its dominant colour)


def _draw(background: tuple[int, int, int], shapes: Iterable[tuple[str, tuple, tuple]]) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (640, 480), background)
    draw = ImageDraw.Draw(image)
    for kind, box, colour in shapes:
        if kind == "ellipse":
            draw.ellipse(box, fill=colour)
        elif kind == "polygon":
            draw.polygon(box, fill=colour)
        else:
            draw.rectangle(box, fill=colour)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def sample_images() -> list[Sample]:
    """Three pictures whose dominant colours differ (the local analyzer describes colours)."""
    sunset = _draw(
        (200, 30, 20),
        [("ellipse", (260, 140, 380, 260), (250, 120, 30)), ("rectangle", (0, 400, 640, 480), (120, 20, 10))],
    )
    ocean = _draw(
        (20, 60, 200),
        [("rectangle", (0, 200 + 40 * i, 640, 210 + 40 * i), (230, 240, 255)) for i in range(5)],
    )
    forest = _draw(
        (30, 150, 40),
        [("polygon", ((x, 400), (x + 60, 150), (x + 120, 400)), (10, 70, 20)) for x in range(60, 660, 120)],
    )
    return [
        Sample("sunset", "sunset.png", sunset, "image/png", "red"),
        Sample("ocean", "ocean.png", ocean, "image/png", "blue"),
        Sample("forest", "forest.png", forest, "image/png", "green"),
    ]


class ApiError(RuntimeError):
    pass


class ApiSession:
    """The API as its users call it, with the demo user's bearer token."""

    def __init__(self, http: Any, token: str):
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    def _check(self, response: Any, what: str) -> Any:
        if response.status_code >= 400:
            raise ApiError(f"{what} answered {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def upload(self, sample: Sample) -> uuid.UUID:
        """POST /uploads, then the multipart POST to the presigned URL (straight to S3)."""
        import httpx

        created = self._check(
            self.http.post(
                "/uploads",
                json={"filename": sample.filename, "content_type": sample.content_type, "size": len(sample.data)},
                headers=self.headers,
            ),
            "POST /uploads",
        )
        upload = created["upload"]
        # S3 takes the form fields first and the file last; this request goes to S3 (moto), not the API.
        response = httpx.post(
            upload["url"],
            data=upload["fields"],
            files={"file": (sample.filename, sample.data, sample.content_type)},
            timeout=30,
        )
        if response.status_code not in (200, 201, 204):
            raise ApiError(f"the presigned POST answered {response.status_code}: {response.text[:500]}")
        return uuid.UUID(created["item"]["id"])

    def item(self, item_id: uuid.UUID) -> dict[str, Any]:
        return self._check(self.http.get(f"/items/{item_id}", headers=self.headers), f"GET /items/{item_id}")

    def search(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        found = self._check(self.http.get("/search", params={"q": query, "k": k}, headers=self.headers), "GET /search")
        return found["items"]

    def wait(
        self,
        item_ids: Iterable[uuid.UUID],
        timeout: float,
        step: Callable[[], Any] | None = None,
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Poll until every item is ready or failed. `step` runs between polls (e.g. Worker.drain)."""
        waiting = set(item_ids)
        done: dict[uuid.UUID, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout
        while waiting:
            if step is not None:
                step()
            for item_id in list(waiting):
                item = self.item(item_id)
                if item["status"] in TERMINAL:
                    done[item_id] = item
                    waiting.discard(item_id)
            if waiting:
                if time.monotonic() > deadline:
                    statuses = {str(i): self.item(i)["status"] for i in waiting}
                    raise TimeoutError(f"items not ready after {timeout:.0f}s: {statuses}")
                time.sleep(0.2)
        return done


def run(timeout: float = 120, out: TextIO | None = None) -> int:
    """`collections demo` against the running `make dev`."""
    import httpx

    out = out or sys.stdout
    try:
        return _run(timeout, out)
    except (ApiError, TimeoutError, httpx.HTTPError) as error:
        print(f"collections demo: {error}", file=sys.stderr)
        return 1


def _run(timeout: float, out: TextIO) -> int:
    import httpx

    from services.local import aws as local_aws
    from services.local.dev import apply_environment, read_state

    state = read_state()
    apply_environment(state.environment(), override=False)
    from services.core.settings import get_settings

    settings = get_settings().model_copy(update={"aws_endpoint_url": state.aws_endpoint_url})
    app = local_aws.CognitoApp(user_pool_id=state.user_pool_id, client_id=state.client_id)
    token = local_aws.access_token(settings, app, state.demo_user)

    with httpx.Client(base_url=state.api_url, timeout=30) as http:
        api = ApiSession(http, token)
        samples = sample_images()
        ids: dict[uuid.UUID, Sample] = {}
        for sample in samples:
            item_id = api.upload(sample)
            ids[item_id] = sample
            print(f"uploaded {sample.filename:<12} item {item_id}", file=out, flush=True)
        print(f"waiting for the pipeline (up to {timeout:.0f}s) ...", file=out, flush=True)
        results = api.wait(ids, timeout)
        failed = 0
        for item_id, item in results.items():
            name = ids[item_id].filename
            if item["status"] == "failed":
                failed += 1
                print(f"  {name:<12} FAILED at {item['failed_stage']}: {item['failure_reason']}", file=out)
            else:
                print(f"  {name:<12} ready: {item.get('title')!r} — {item.get('description')}", file=out)
        query = samples[0].query
        print(f"\nGET /search?q={query}", file=out)
        for rank, hit in enumerate(api.search(query, k=3), start=1):
            print(f"  {rank}. {hit['filename']:<12} distance {hit['distance']:.3f}  {hit.get('title')!r}", file=out)
        out.flush()
    return 1 if failed else 0
