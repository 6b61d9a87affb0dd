"""The dev server under load: `collections dev` (what `make dev` runs) as a real process on
127.0.0.1, and N concurrent asyncio + httpx clients for a fixed time each, sending a mix of
list (40 %), get (30 %), search (20 %) and upload (10 %, POST /uploads) requests.

Reported per round: requests, rps, p50/p95/p99 latency and errors (any status other than the
expected 200/201, and transport errors and timeouts). Target (issue 10): 50 clients with 0 errors,
p95 at most twice the 20-client figure; see `_judge` for the two readings and why a closed loop cannot
meet the second once the server saturates.

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
# Issue 10's "measured today" before the fix: 20 clients 170 rps, p95 255 ms, 0 errors; 50 clients ~2 rps.
ISSUE_20_CLIENT_P95_MS = 255.0


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


def _judge(twenty: dict, fifty: dict) -> list[str]:
    """Issue 10's target, read both ways it can be read, with what bounds the second.

    The clients are a closed loop with no think time: each sends its next request when the last one
    answers. Past saturation (a handful of clients here) the server's throughput X is what it is, and by
    Little's law the mean latency is clients / X: at equal throughput 50 clients wait 2.5 times as long
    as 20, whatever the server does. So the mean ratio printed is (50/20) x (X20/X50) by construction;
    the p95 ratio can only beat it by a tighter spread at 50 clients. What the fix itself must show:
    no errors at 50 clients and no throughput lost to them."""
    ratio = fifty["p95_ms"] / twenty["p95_ms"]
    mean_ratio = fifty["mean_ms"] / twenty["mean_ms"]
    against_issue = fifty["errors"] == 0 and fifty["p95_ms"] <= 2 * ISSUE_20_CLIENT_P95_MS
    return [
        f"target (issue 10): 50 clients with 0 errors and p95 <= 2x the 20-client figure the issue measured "
        f"({ISSUE_20_CLIENT_P95_MS:.0f} ms): {fifty['errors']} errors, p95 {fifty['p95_ms']:.0f} ms "
        f"<= {2 * ISSUE_20_CLIENT_P95_MS:.0f} ms -> {'met' if against_issue else 'NOT met'}",
        f"against this run's own 20-client figures: p95 ratio {ratio:.2f}, mean ratio {mean_ratio:.2f} "
        f"(Little's law, closed loop: (50/20) x (rps at 20 / rps at 50) = "
        f"{(fifty['clients'] / twenty['clients']) * (twenty['rps'] / fifty['rps']):.2f}); throughput at 50 clients "
        f"is {fifty['rps'] / twenty['rps']:.0%} of that at 20",
    ]


def _summary(fifty: dict) -> list[dict]:
    return [
        {
            "measure": "dev server, 50 clients: errors, p95",
            "today": f"nearly all requests failed (~2 rps); 20 clients p95 {ISSUE_20_CLIENT_P95_MS:.0f} ms",
            "now": f"{fifty['errors']} errors, p95 {fifty['p95_ms']:.0f} ms, {fifty['rps']:.0f} rps",
            "target": f"0 errors, p95 <= {2 * ISSUE_20_CLIENT_P95_MS:.0f} ms",
            "ok": fifty["errors"] == 0 and fifty["p95_ms"] <= 2 * ISSUE_20_CLIENT_P95_MS,
        }
    ]


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
        "mean_ms": round(sum(latencies) / len(latencies), 1) if latencies else float("nan"),
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
        summary = []
        if 20 in by_clients and 50 in by_clients:
            notes += _judge(by_clients[20], by_clients[50])
            summary = _summary(by_clients[50])
        notes.append(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        dev.stop()
    return {
        "title": "dev server under load (collections dev, asyncio + httpx clients)",
        "rows": rows,
        "notes": notes,
        "summary": summary,
    }
