"""The Pulumi program's cost: a prod run under the mocks (target ≤ 5 s) and each service's real
Lambda artifact, built with pip for its platform (api must stay under 25 MB zipped).

    .venv/bin/python -m tests.bench bench_infra

The artifacts go to .collections/build (the program's own cache): the first run downloads every
dependency group's wheels from PyPI; later runs reuse them.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from infra import artifacts
from infra.mocks import run_program
from services import catalog

PROGRAM_TARGET_S = 5.0
API_ZIP_TARGET_BYTES = 25 * 1024 * 1024
RUNS = 3


def _program_rows() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as build:
        run_program("dev", build_dir=Path(build))  # imports and artifact cache warm
        for stack in ("prod", "dev"):
            times, resources = [], 0
            for _ in range(RUNS):
                started = time.perf_counter()
                run = run_program(stack, build_dir=Path(build))
                times.append(time.perf_counter() - started)
                resources = sum(1 for r in run.resources.values() if r.custom)
            rows.append({
                "measure": f"{stack} program under mocks", "median_s": round(statistics.median(times), 2),
                "max_s": round(max(times), 2), "resources": resources,
                "target": f"≤ {PROGRAM_TARGET_S} s" if stack == "prod" else "",
                "ok": (max(times) <= PROGRAM_TARGET_S) if stack == "prod" else "",
            })
    return rows


def _artifact_rows() -> list[dict]:
    rows = []
    for fn in catalog.FUNCTIONS:
        started = time.perf_counter()
        artifact = artifacts.build_zip(fn, check_limits=False)
        limit_ok = (artifact.zipped_bytes <= artifacts.MAX_ZIPPED_BYTES
                    and artifact.unzipped_bytes <= artifacts.MAX_UNZIPPED_BYTES)
        rows.append({
            "measure": f"zip {fn.name} ({fn.dependency_group}, {fn.architecture})",
            "zipped_mb": round(artifact.zipped_bytes / 2**20, 2),
            "unzipped_mb": round(artifact.unzipped_bytes / 2**20, 2),
            "build_s": round(time.perf_counter() - started, 1),
            "target": "< 25 MB zipped" if fn.name == "api" else "≤ 50 / 250 MB",
            "ok": artifact.zipped_bytes < API_ZIP_TARGET_BYTES if fn.name == "api" else limit_ok,
        })
    return rows


def run() -> dict:
    rows = _program_rows() + _artifact_rows()
    return {
        "title": "Infra: Pulumi program under mocks and Lambda artifact sizes",
        "rows": rows,
        "notes": [
            f"program: median and max of {RUNS} fresh runs (runpy of infra/__main__.py) after a warm-up run; "
            "code-only archives so the timing is the program's, not pip's",
            "artifacts: the services package + the function's dependency group, pip-installed for "
            "manylinux2014 / cp312 / the function's architecture; build_s includes pip only on the first "
            "run (dependencies are cached per group) and zipping whenever the services code changed",
            "Lambda limits: 50 MB zipped (direct upload), 250 MB unzipped",
        ],
    }
