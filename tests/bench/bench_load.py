"""The dev server under load: `collections dev` (what `make dev` runs) as a real process on
127.0.0.1, and N concurrent asyncio + httpx clients for a fixed time each, sending a mix of
list (40 %), get (30 %), search (20 %) and upload (10 %, POST /uploads) requests.

Reported per round: requests, rps, p50/p95/p99 latency and errors (any status other than the
expected 200/201, and transport errors and timeouts). Target (issue 10): 50 clients with 0 errors,
p95 at most twice the 20-client figure.

The per-user limits are turned off for the run (one user sends everything). The analyzer and
embedder are the local stand-ins; nothing is uploaded to S3, so the pipeline stays idle and the
figures are the API's. `BENCH_LOAD_CLIENTS` (default "20,50") and `BENCH_LOAD_SECONDS` (default 30)
change the rounds.
"""

from __future__ import annotations

import asyncio
import os
import queue
import random
import subprocess
import tempfile
import time
from pathlib import Path

from services.local.dev import LOG_LEVEL_VARIABLE
from tests.e2e.conftest import DevProcess

MIX = (("list", 40), ("get", 30), ("search", 20), ("upload", 10))
WORDS = ["red", "kite", "beach", "city", "night", "dog", "forest", "snow", "car", "food", "sky", "river"]
REQUEST_TIMEOUT_S = 60.0


class _Dev(DevProcess):
    """tests/e2e's `collections dev` process, with the API keys out (local stand-ins) and the
    per-user limits off: one user sends everything."""

    def __init__(self, data_dir: Path):
        super().__init__(data_dir)
        for key in ("VOYAGE_API_KEY", "ANTHROPIC_API_KEY", "AWS_PROFILE"):
            self.env.pop(key, None)
        self.env.update(
            COLLECTIONS_LIMIT_PENDING_UPLOADS="0",
            COLLECTIONS_LIMIT_UPLOADS_PER_DAY="0",
            COLLECTIONS_LIMIT_SEARCHES_PER_MINUTE="0",
        )
        # uvicorn writes a line per request at INFO: under load that is CPU the server needs.
        self.env[LOG_LEVEL_VARIABLE] = os.environ.get(LOG_LEVEL_VARIABLE, "WARNING")

    def token(self) -> str:
        for line in self.lines:
            if "Authorization: Bearer " in line:
                return line.split("Authorization: Bearer ", 1)[1].split('"', 1)[0]
        raise RuntimeError("no token in the banner")

    def log_lines(self) -> int:
        """Lines the server printed so far: at WARNING, a failure storm shows here."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return len(self.lines)
            if line is None:
                return len(self.lines)
            self.lines.append(line)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.interrupt(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def _percentile(sorted_ms: list[float], fraction: float) -> float:
    if not sorted_ms:
        return float("nan")
    index = min(len(sorted_ms) - 1, max(0, round(fraction * (len(sorted_ms) - 1))))
    return round(sorted_ms[index], 1)


async def _round(base_url: str, token: str, clients: int, seconds: float, item_ids: list[str]) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    errors: dict[str, int] = {}
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def client(number: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(number)
        while time.monotonic() < deadline:
            kind = rng.choice(kinds)
            if kind == "list":
                request = http.get("/items", params={"limit": 20})
            elif kind == "get":
                request = http.get(f"/items/{rng.choice(item_ids)}")
            elif kind == "search":
                request = http.get("/search", params={"q": " ".join(rng.sample(WORDS, 2)), "k": 10})
            else:
                request = http.post("/uploads", json={"filename": f"c{number}.jpg", "content_type": "image/jpeg"})
            started = time.perf_counter()
            try:
                response = await request
                status = str(response.status_code)
            except httpx.HTTPError as error:
                status = type(error).__name__
            latencies.append((time.perf_counter() - started) * 1000)
            if status not in ("200", "201"):
                errors[f"{kind} {status}"] = errors.get(f"{kind} {status}", 0) + 1

    async def one_client(number: int) -> None:
        # A client of its own per simulated user (one keep-alive connection each), as browsers are:
        # one shared httpx pool of 50 connections costs the benchmark itself CPU the server needs.
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S, limits=limits
        ) as http:
            await client(number, http)

    started = time.monotonic()
    await asyncio.gather(*(one_client(n) for n in range(clients)))
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": _percentile(latencies, 0.50),
        "p95_ms": _percentile(latencies, 0.95),
        "p99_ms": _percentile(latencies, 0.99),
        "errors": sum(errors.values()),
        "error_kinds": ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "-",
    }


def run() -> dict:
    import httpx

    rounds = [int(n) for n in os.environ.get("BENCH_LOAD_CLIENTS", "20,50").split(",")]
    seconds = float(os.environ.get("BENCH_LOAD_SECONDS", "30"))
    notes = [f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores"]
    rows: list[dict] = []
    data_dir = Path(tempfile.mkdtemp(prefix="collections-bench-load-"))
    dev = _Dev(data_dir)
    try:
        dev.start(timeout=300)  # the banner, with the curl commands that carry the token
        token = dev.token()
        base_url = f"http://127.0.0.1:{dev.api_port}"
        headers = {"Authorization": f"Bearer {token}"}
        # Items to GET: pending items made through the API itself.
        item_ids = [
            httpx.post(
                f"{base_url}/uploads",
                headers=headers,
                json={"filename": f"seed{n}.jpg", "content_type": "image/jpeg"},
                timeout=30,
            ).json()["item"]["id"]
            for n in range(20)
        ]
        for clients in rounds:
            before = dev.log_lines()
            row = asyncio.run(_round(base_url, token, clients, seconds, item_ids))
            row["server_log_lines"] = dev.log_lines() - before
            rows.append(row)
        by_clients = {row["clients"]: row for row in rows}
        if 20 in by_clients and 50 in by_clients:
            ratio = by_clients[50]["p95_ms"] / by_clients[20]["p95_ms"]
            ok = by_clients[50]["errors"] == 0 and ratio <= 2.0
            notes.append(
                f"target: 50 clients with 0 errors and p95 <= 2x the 20-client p95: "
                f"{by_clients[50]['errors']} errors, p95 ratio {ratio:.2f} -> {'met' if ok else 'NOT met'}"
            )
        notes.append(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        dev.stop()
    return {"title": "dev server under load (collections dev, asyncio + httpx clients)", "rows": rows, "notes": notes}
