"""`make bench`: run every tests/bench/bench_*.py module (or those named on the command line).

With several modules, each runs in a fresh interpreter of its own: one benchmark's environment,
caches and warm imports must not leak into the next one's figures.

Each module exposes `run() -> dict` returning {"title": str, "rows": [dict, ...], "notes": [str]}
and optionally "summary": rows of {measure, today, now, target, ok} for the targets table printed
last. The runner prints each as a table and writes it to tests/bench/results/<name>.json.

Quiet: log records below WARNING (ours, Powertools', alembic's, pgserver's, and uvicorn's request
lines in a `collections dev` a benchmark starts) would bury the tables, so the runner turns them
off for itself and every interpreter it starts (POWERTOOLS_LOG_LEVEL, COLLECTIONS_LOG_LEVEL).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def _table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, sep, *body])


def _quiet() -> None:
    # Powertools' Logger reads its level from the environment when each Logger is created.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    # `collections dev` (services/local/dev.py: its runtime's lines and uvicorn's, one per request).
    os.environ.setdefault("COLLECTIONS_LOG_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING, force=True)
    logging.getLogger().setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request at INFO
    # pgserver asks platformdirs for a runtime dir; its fallback warning says nothing about the figures.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _print_summary(names: list[str]) -> None:
    lines = []
    for name in names:
        path = RESULTS / f"{name}.json"
        if path.exists():
            lines += json.loads(path.read_text()).get("summary", [])
    if lines:
        print("\n## Targets: each issue's 'today' measured again beside now\n")
        print(_table(lines))


def main(argv: list[str]) -> int:
    _quiet()
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    if len(names) > 1:
        codes = [subprocess.call([sys.executable, "-m", "tests.bench", name]) for name in names]
        _print_summary(names)
        return 1 if any(codes) else 0
    RESULTS.mkdir(exist_ok=True)
    failed = 0
    for name in names:
        module = importlib.import_module(f"tests.bench.{name}")
        started = time.perf_counter()
        try:
            result = module.run()
        except Exception as error:  # one broken benchmark must not hide the others
            failed += 1
            print(f"\n## {name}: FAILED: {error!r}")
            continue
        result.setdefault("title", name)
        result["machine"] = {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()}
        result["wall_s"] = round(time.perf_counter() - started, 2)
        (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2, default=str))
        print(f"\n## {result['title']}  ({result['wall_s']} s)\n")
        print(_table(result.get("rows", [])))
        for note in result.get("notes", []):
            print(f"  - {note}")
        if result.get("summary"):
            print()
            print(_table(result["summary"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
