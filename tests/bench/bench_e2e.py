"""End-to-end pipeline throughput, locally: N distinct images uploaded through the API (POST
/uploads + a real multipart POST to moto's S3), then the time until every item is ready.

Everything is the `make dev` environment (services.local.dev.DevEnvironment: embedded
PostgreSQL, moto, Cognito, the catalog wiring) in a temporary data folder; the API runs
in-process (Starlette's TestClient). The analyzer and embedder are the local stand-ins (no API
keys): the figures measure our code, S3/EventBridge/SQS on moto and PostgreSQL, not Claude or Voyage.

Two ways of running the worker:
  - drain: one thread processes the queues in turn (what tests use);
  - threads: one polling thread per function, as `make dev` runs it.

`BENCH_E2E_IMAGES` sets N (default 24).
"""

from __future__ import annotations

import io
import logging
import os
import random
import tempfile
import time
from pathlib import Path


def _images(n: int, seed: int = 7) -> list:
    from PIL import Image, ImageDraw

    from services.local.demo import Sample

    rng = random.Random(seed)
    samples = []
    for index in range(n):
        image = Image.new("RGB", (800, 600), tuple(rng.randrange(256) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for _ in range(12):  # distinct content: no two uploads deduplicate
            x, y = rng.randrange(700), rng.randrange(500)
            draw.rectangle((x, y, x + rng.randrange(20, 200), y + rng.randrange(20, 200)),
                           fill=tuple(rng.randrange(256) for _ in range(3)))  # fmt: skip
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        samples.append(Sample(f"bench-{index}", f"bench-{index}.jpg", out.getvalue(), "image/jpeg", ""))
    return samples


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _round(api, worker, samples, mode: str) -> dict:
    started = time.perf_counter()
    ids = [api.upload(sample) for sample in samples]
    uploaded = time.perf_counter()
    if mode == "drain":
        done = api.wait(ids, timeout=600, step=lambda: worker.drain(timeout=600))
    else:
        worker.start()
        try:
            done = api.wait(ids, timeout=600)
        finally:
            worker.stop()
    finished = time.perf_counter()
    ready = sum(1 for item in done.values() if item["status"] == "ready")
    total = finished - started
    return {
        "mode": mode,
        "images": len(samples),
        "ready": ready,
        "upload_s": round(uploaded - started, 2),
        "pipeline_s": round(finished - uploaded, 2),
        "total_s": round(total, 2),
        "images_per_min": round(len(samples) / total * 60, 1),
        "ms_per_image": round(total / len(samples) * 1000),
        "handler_failures": sum(s.failed for s in worker.stats.values()),
    }


def run() -> dict:
    from fastapi.testclient import TestClient

    from services.core.settings import get_settings
    from services.local.aws import FAKE_CREDENTIALS
    from services.local.demo import ApiSession
    from services.local.dev import DevEnvironment

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log
    n = int(os.environ.get("BENCH_E2E_IMAGES", "24"))
    data_dir = Path(tempfile.mkdtemp(prefix="collections-bench-e2e-"))
    for key in ("DATABASE_URL", "AWS_ENDPOINT_URL", "ANTHROPIC_API_KEY", "VOYAGE_API_KEY"):
        os.environ.pop(key, None)
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.update(
        COLLECTIONS_DATA_DIR=str(data_dir),
        COLLECTIONS_API_PORT=str(_free_port()),
        COLLECTIONS_MOTO_PORT=str(_free_port()),
        # One user uploads every image at once: the per-user limits (20 uploads in progress) would answer 429.
        COLLECTIONS_LIMIT_PENDING_UPLOADS="0",
        COLLECTIONS_LIMIT_UPLOADS_PER_DAY="0",
        COLLECTIONS_LIMIT_SEARCHES_PER_MINUTE="0",
    )
    get_settings.cache_clear()
    environment = DevEnvironment(out=io.StringIO())
    rows = []
    try:
        environment.start(run_worker=False)
        from services.api.app import create_app

        with TestClient(create_app()) as client:
            api = ApiSession(client, environment.token)
            rows.append(_round(api, environment.worker, _images(n, seed=1), "drain"))
            environment.worker.stats = {name: type(s)() for name, s in environment.worker.stats.items()}
            rows.append(_round(api, environment.worker, _images(n, seed=2), "threads"))
    finally:
        environment.stop()
        import shutil

        shutil.rmtree(data_dir, ignore_errors=True)
    return {
        "title": f"End-to-end pipeline throughput, local ({n} images of 800x600 JPEG per mode)",
        "rows": rows,
        "notes": [
            "Upload = POST /uploads (in-process API) + multipart POST to moto's S3 over HTTP.",
            "Pipeline = S3 event → EventBridge rule → SQS → image_processor → analyzer → embedder → ready.",
            "AI: the local stand-ins (services/core/ai/local.py): pixel analysis and feature-hashing "
            "embeddings; real Claude/Voyage latency is not included.",
            "threads: handler_failures counts transient retries (e.g. a stage that saw its item before "
            "the previous stage committed), each costing the dev retry delay (SQS visibility timeout).",
        ],
    }
