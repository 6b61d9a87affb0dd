"""The web app: first-load size and time to first thumbnail on a warm `make dev`.

- Size: the files a first visit fetches (index.html, app.css, every ES module, icon, config.json),
  raw and gzip-compressed (level 6, as the dev server sends them; CloudFront compresses on AWS), and
  what Chromium reports it actually received (encodedBodySize of the page's resources).
- Time to first thumbnail: `collections dev` as a subprocess with BENCH_WEB_ITEMS ready items (default
  24) of the demo user; each round is a fresh browser context (empty cache, new sign-in on moto's
  Cognito) loading the app URL, timed from navigation start to the first grid image decoded
  (performance.now() in the page). The server is warmed by one load first.

`BENCH_WEB_ROUNDS` sets the rounds (default 10). Debian's chromium drives it (make browser-deps).
"""

from __future__ import annotations

import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

FIRST_THUMB = """
window.__firstThumb = null;
new MutationObserver((records, observer) => {
  for (const img of document.querySelectorAll('.grid img')) {
    const done = () => { if (window.__firstThumb === null) window.__firstThumb = performance.now(); };
    if (img.complete && img.naturalWidth) done(); else img.addEventListener('load', done, { once: true });
    observer.disconnect();
    return;
  }
}).observe(document, { childList: true, subtree: true });
"""


def _sizes() -> tuple[list[dict], dict]:
    from services.web import site

    rows = []
    totals = {"raw": 0, "gzip": 0, "js_css_gzip": 0}
    for name, path in site.app_files().items():
        data = path.read_bytes()
        packed = len(gzip.compress(data, 6))
        rows.append({"file": name, "bytes": len(data), "gzip_bytes": packed})
        totals["raw"] += len(data)
        totals["gzip"] += packed
        if name.endswith((".js", ".css")):
            totals["js_css_gzip"] += packed
    return rows, totals


def run() -> dict:
    from playwright.sync_api import sync_playwright

    from services.local.demo import ApiSession
    from services.local.dev import LOG_LEVEL_VARIABLE
    from tests.bench.bench_e2e import _images
    from tests.e2e.conftest import DevProcess
    from tests.e2e.test_web import CHROMIUM, CHROMIUM_ARGS

    items = int(os.environ.get("BENCH_WEB_ITEMS", "24"))
    rounds = int(os.environ.get("BENCH_WEB_ROUNDS", "10"))
    file_rows, totals = _sizes()
    folder = Path(tempfile.mkdtemp(prefix="collections-bench-web-"))
    dev = DevProcess(folder / "data")
    dev.env[LOG_LEVEL_VARIABLE] = os.environ.get(LOG_LEVEL_VARIABLE, "WARNING")  # no line per request
    try:
        dev.start()
        import httpx

        [line] = [line for line in dev.lines if line.strip().startswith("App ")]
        app_url = line.split()[1]
        api_url = f"http://127.0.0.1:{dev.api_port}"
        token = dev.cli("token").stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=api_url, timeout=60) as http:
            api = ApiSession(http, token)
            ids = [api.upload(sample) for sample in _images(items, seed=11)]
            api.wait(ids, timeout=600)

        timings, received = [], []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for index in range(rounds + 1):
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(FIRST_THUMB)
                page = context.new_page()
                page.goto(app_url)
                deadline = time.monotonic() + 60
                while (first := page.evaluate("window.__firstThumb")) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError("no thumbnail within 60 s")
                    time.sleep(0.02)
                if index:  # the first load warms the server
                    timings.append(first)
                    received.append(page.evaluate(
                        "performance.getEntriesByType('resource')"
                        ".filter(e => /\\.(js|css)$/.test(new URL(e.name).pathname))"
                        ".reduce((sum, e) => sum + e.encodedBodySize, 0)"))
                context.close()
            browser.close()
    finally:
        try:
            dev.interrupt(timeout=60)
        except Exception:
            dev.kill()
        shutil.rmtree(folder, ignore_errors=True)

    timings.sort()
    rows = [
        {"measure": "first load, all files (raw)", "value": f"{totals['raw'] / 1024:.1f} KiB"},
        {"measure": "first load, all files (gzip)", "value": f"{totals['gzip'] / 1024:.1f} KiB"},
        {"measure": "JS + CSS (gzip)", "value": f"{totals['js_css_gzip'] / 1024:.1f} KiB"},
        {"measure": "JS + CSS as Chromium received them", "value": f"{statistics.median(received) / 1024:.1f} KiB"},
        {"measure": f"time to first thumbnail, median of {rounds}", "value": f"{statistics.median(timings):.0f} ms"},
        {"measure": "time to first thumbnail, worst", "value": f"{timings[-1]:.0f} ms"},
    ]
    return {
        "title": "web app: first-load size and time to first thumbnail (warm make dev)",
        "rows": rows,
        "files": file_rows,
        "notes": [
            f"{items} ready items; each round a fresh browser context (empty cache, sign-in on moto's Cognito, "
            "GET /items, presigned thumbnail GET from moto's S3)",
            "no build step: the browser fetches each ES module (index.html → main.js → 5 modules)",
            f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (shared machine)",
        ],
    }
