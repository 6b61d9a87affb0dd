"""Cold starts as Lambda pays them: every function from its real artifact layout.

For each function of services/catalog.py, infra/artifacts.py builds its zip twice, for this
machine's platform and Python: with bytecode (what the build ships when it has the runtime's
Python) and source only (what shipped before, and what a build without that Python still ships).
Each zip is extracted into a read-only folder standing in for /var/task; boto3, which Lambda's
Python runtime provides, is installed beside it (compiled, as in the runtime). Every run is a
fresh interpreter with no site-packages (`-S -s`), bytecode writes off (`-B`,
PYTHONDONTWRITEBYTECODE=1) and only those two folders on sys.path, that:
1. imports the handler module (Lambda's init),
2. invokes the handler once with a real-shaped event: an API Gateway v2.0 GET /items for the api
   (a Cognito access token from moto's pool, verified against its JWKS, then a database query),
   pipelines/flip.py's smoke events for the stages (an unknown item, a missing object, a dry-run
   schedule; each reaches PostgreSQL and moto's S3), nothing for migrate (it upgrades an already
   migrated database).

Reported per function: cold import and first invocation (p50 of RUNS), source-only beside the
bytecode build, and their ratio. Another Python version than the runtime's (3.12) measures the
same effect; the figures on Lambda differ by CPU, not by kind.

Run: .venv/bin/python -m tests.bench bench_coldstart
(COLLECTIONS_BENCH_IMPORTTIME_DIR=/tmp/importtime keeps each function's raw `-X importtime` log.)
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = ROOT / ".collections" / "bench-build"  # cached between runs: pip runs once per group
RUNS = 3
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
ARCHITECTURE = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
USER = "bench-cold@example.com"
# The targets (p50 on this 2-core machine), and what "today" measured before this work.
TARGETS_MS = {
    "api cold import": 500,
    "api first request": 700,
    "stage cold import + first event": 400,
    "analyzer with Claude configured": 900,
}
# Wall time is what Lambda bills and users wait for; on a shared machine it also counts the time other
# processes hold the CPU. CPU time (process_time) is printed beside it: the work itself, steadier.
RUNTIME_PROVIDED = ("boto3",)  # Lambda's Python runtime ships the AWS SDK
TOP_IMPORTS = 8  # packages per function in the import-cost table
IMPORTTIME_DIR_ENV = "COLLECTIONS_BENCH_IMPORTTIME_DIR"  # set: each function's raw -X importtime log goes there

# One fresh interpreter: import the handler, invoke it once, report the times as JSON.
CHILD = """
import importlib, json, sys, time
task, runtime, handler_path, extra = sys.argv[1:5]
sys.path[:0] = [task, runtime]
first_event, warm_event = json.loads(sys.stdin.read())
c0, t0 = time.process_time(), time.perf_counter()
module_name, attribute = handler_path.rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
c1, t1 = time.process_time(), time.perf_counter()
def library_modules():
    return [name for name, m in list(sys.modules.items()) if name.split(".")[0] != "services"
            and (getattr(m, "__file__", None) or "").startswith((task + "/", runtime + "/"))]
at_import = library_modules()
heavy = [m for m in ("anthropic", "voyageai", "PIL") if m in sys.modules]

class Context:
    function_name, function_version, memory_limit_in_mb = "bench", "1", 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench:live"
    aws_request_id, log_group_name, log_stream_name = "bench", "/aws/lambda/bench", "bench"
    def get_remaining_time_in_millis(self):
        return 30000

result = handler(first_event, Context())
t2 = time.perf_counter()
for name in filter(None, extra.split(",")):
    importlib.import_module(name)
c3, t3 = time.process_time(), time.perf_counter()
warm_result = handler(warm_event, Context())  # the same kind of event, warm: what the first paid for being first
c4, t4 = time.process_time(), time.perf_counter()
status = result.get("statusCode") if isinstance(result, dict) else None
outside = sorted({m.__file__.split("/site-packages/")[0] for m in list(sys.modules.values())
                  if getattr(m, "__file__", None) and "/site-packages/" in m.__file__})
libraries = library_modules()
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "extra": t3 - t2, "warm": t4 - t3, "status": status,
                  "outcomes": [r.get("result") if isinstance(r, dict) else None for r in (result, warm_result)],
                  "cpu_import": c1 - c0, "cpu_total": c3 - c0, "cpu_warm": c4 - c3,
                  "modules": len(sys.modules), "site_packages": outside, "heavy_at_init": heavy,
                  "libraries": libraries, "libraries_at_import": at_import}))
"""

# The floor: a fresh interpreter of the same layout imports exactly the library modules the function's cold
# path loaded (in the order it loaded them), with none of our code and no I/O, the collector paused as in the
# function's init (services/core/coldstart.py). What is left above it is ours: our modules, clients, queries.
FLOOR_CHILD = """
import gc, importlib, json, sys, time
task, runtime = sys.argv[1:3]
sys.path[:0] = [task, runtime]
names = json.loads(sys.stdin.read())
gc.disable()
c0, t0 = time.process_time(), time.perf_counter()
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {exc!r}")
c1, t1 = time.process_time(), time.perf_counter()
loaded = [name for name, m in list(sys.modules.items())
          if (getattr(m, "__file__", None) or "").startswith((task + "/", runtime + "/"))]
print(json.dumps({"wall": t1 - t0, "cpu": c1 - c0, "failed": failed, "loaded": loaded}))
"""


def _extract(archive: Path, target: Path) -> Path:
    """The zip as Lambda lays it out: files only, then the whole tree made read-only."""
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(target)
    _read_only(target)
    return target


def _read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _runtime_deps() -> Path:
    """boto3 as Lambda's runtime provides it, installed once for this Python (cached like the groups).

    Not a lock of ours (the runtime's SDK is AWS's): the dev environment's boto3 version, wheels only."""
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in RUNTIME_PROVIDED]
    target = BUILD_DIR / "runtime" / f"{'-'.join(pins)}-py{PYTHON}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                    "--only-binary=:all:", "--target", str(target), *pins], check=True)
    (target / ".complete").write_text("\n".join(pins) + "\n")
    return target


def _runtime_dir(workdir: Path) -> Path:
    """boto3 as Lambda's runtime provides it: installed for this Python, compiled."""
    deps = _runtime_deps()
    runtime = workdir / "runtime"
    shutil.copytree(deps, runtime, ignore=shutil.ignore_patterns(".complete"))
    subprocess.run([sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash",
                    str(runtime)], check=True)
    _read_only(runtime)
    return runtime


class Repeated:
    """The same event twice (first and warm): the api's request, cleanup's dry run, migrate, smoke events."""

    def __init__(self, make: Callable[[], dict]):
        self.make = make

    def pair(self) -> list[dict]:
        return [self.make(), self.make()]

    def settle(self, outcomes: list) -> None:
        pass


class RealItems:
    """Items that travel the real pipeline, a stage per measured function, so each stage's first event is one
    users send: an upload of a 1600x1200 JPEG to the image processor, the item it processed to the analyzer,
    the item analyzed to the embedder (the local analyzer and embedder: no model API here). Every run takes
    two items at the stage's input (first and warm events); each must come out at the stage's output, or
    the run measured something else (fail closed)."""

    def __init__(self, url: str, storage_settings: Any, region: str):
        from sqlalchemy import create_engine

        from services.core.database import normalize_url

        self.engine = create_engine(normalize_url(url))
        self.settings, self.region = storage_settings, region
        self.waiting: dict[str, list[uuid.UUID]] = {"processed": [], "analyzed": []}
        self.sent: list[uuid.UUID] = []
        self.owner = "bench-cold-pipeline"

    def for_stage(self, name: str) -> StageEvents:
        return StageEvents(self, name)

    def event(self, stage_name: str) -> dict:
        from pipelines import flip
        from services import catalog
        from services.core import aws
        from services.core.contracts import event_for
        from services.core.tables import items

        stage = catalog.stage(stage_name)
        if stage.input_status == "pending":
            item_id = uuid.uuid4()
            key = f"{catalog.UPLOADS_PREFIX}{self.owner}/{item_id}/photo.jpg"
            data = _jpeg(item_id)
            with self.engine.begin() as connection:
                connection.execute(items.insert().values(id=item_id, owner_id=self.owner, filename="photo.jpg",
                                                         original_key=key, content_type="image/jpeg"))
            aws.client("s3", self.settings).put_object(Bucket=self.settings.bucket, Key=key, Body=data,
                                                       ContentType="image/jpeg")
            self.sent.append(item_id)
            event = flip.s3_missing_object_event(self.settings.bucket, self.region)
            event["detail"]["object"].update(key=key, size=len(data))
            return event
        if not self.waiting[stage.input_status]:
            raise RuntimeError(f"no item waits at {stage.input_status!r} for {stage_name}: measure the stages in order")
        item_id = self.waiting[stage.input_status].pop(0)
        with self.engine.connect() as connection:
            row = connection.execute(items.select().where(items.c.id == item_id)).one()
        self.sent.append(item_id)
        detail = event_for(catalog.stage_with_output(stage.input_status).emits, row)
        return flip._eventbridge(catalog.PIPELINE_SOURCE, detail.DETAIL_TYPE, detail.model_dump(mode="json"),
                                 self.region)

    def settle(self, stage_name: str, outcomes: list) -> None:
        from services import catalog
        from services.core.tables import items

        stage = catalog.stage(stage_name)
        sent, self.sent = self.sent[-len(outcomes):], self.sent[:-len(outcomes)]
        with self.engine.connect() as connection:
            statuses = [connection.execute(items.select().with_only_columns(items.c.status)
                                           .where(items.c.id == item_id)).scalar_one().value for item_id in sent]
        if any(status != stage.output_status for status in statuses) or set(outcomes) != {stage.output_status}:
            raise AssertionError(f"{stage_name}'s events left items at {statuses} (outcomes {outcomes}), "
                                 f"not {stage.output_status!r}: the run did not measure the stage's work")
        if stage.output_status in self.waiting:
            self.waiting[stage.output_status].extend(sent)


class StageEvents:
    """A measured stage's first and warm events, from RealItems."""

    def __init__(self, items: RealItems, stage_name: str):
        self.items, self.stage_name = items, stage_name

    def pair(self) -> list[dict]:
        return [self.items.event(self.stage_name), self.items.event(self.stage_name)]

    def settle(self, outcomes: list) -> None:
        self.items.settle(self.stage_name, outcomes)


def _jpeg(item_id: uuid.UUID) -> bytes:
    """A 1600x1200 photo-sized JPEG, its own bytes per item (the same bytes twice would be a duplicate)."""
    from PIL import Image

    image = Image.radial_gradient("L").resize((1600, 1200)).convert("RGB")
    for x, value in enumerate(item_id.bytes):
        image.paste((value, 255 - value, value), (x * 64, 0, x * 64 + 64, 64))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _events(bucket: str, region: str, user: tuple[str, str, str], pipeline: RealItems) -> dict[str, tuple]:
    """Per measured line: (where its first and warm events come from, modules imported after the first
    event, extra environment)."""
    from pipelines import flip
    from services import catalog
    from tests.services.api.lambda_events import access_claims, http_api_event

    sub, client_id, token = user
    # apigateway mode verifies the forwarded token too (services/core/auth.py): a real one, from moto's pool.
    api = Repeated(lambda: http_api_event("GET", "/items", query={"limit": 20}, claims=access_claims(sub, client_id),
                                          headers={"authorization": f"Bearer {token}"}))
    return {
        "api": (api, "", {}),
        "image_processor": (pipeline.for_stage("process"), "", {}),
        "analyzer": (pipeline.for_stage("analyze"), "", {}),
        # Claude configured: no model API is reachable here, so an unknown item (pipelines/flip.py's smoke
        # event); the adapter and its HTTP client, which the first real event loads, are imported after it
        # (the "with the anthropic SDK" line: the adapter speaks the Messages API over urllib3 now).
        "analyzer with Claude configured": (
            Repeated(lambda: flip.pipeline_unknown_item_event(catalog.IMAGE_PROCESSED, region)),
            "services.core.ai.claude,urllib3",
            {"ANTHROPIC_API_KEY": "sk-ant-bench"},
        ),
        "embedder": (pipeline.for_stage("embed"), "", {}),
        "cleanup": (Repeated(lambda: flip.scheduled_dry_run_event(region)), "", {}),
        "migrate": (Repeated(dict), "", {}),
    }


def _measure(task: Path, runtime: Path, handler: str, source: Any, extra: str, env: dict,
             with_floor: bool | str = False) -> dict:
    samples = []
    for _ in range(RUNS):
        result = subprocess.run(
            [sys.executable, "-S", "-s", "-B", "-c", CHILD, str(task), str(runtime), handler, extra],
            input=json.dumps(source.pair()), capture_output=True, text=True, env=env, cwd=task, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{handler} from {task} failed:\n{result.stderr[-3000:]}")
        sample = json.loads(result.stdout.strip().splitlines()[-1])
        source.settle(sample["outcomes"])
        samples.append(sample)
    heavy = sorted({m for s in samples for m in s["heavy_at_init"]})
    if heavy:
        raise AssertionError(f"{handler} imports {heavy} at init: they belong to the first event that needs them")
    leaked = {p for s in samples for p in s["site_packages"]}
    if leaked:
        raise AssertionError(f"{handler} imported from site-packages {leaked}: not the artifact layout")
    floor = _floor(task, runtime, samples[0]["libraries"], env) if with_floor else {"cpu": 0.0, "wall": 0.0}
    floor_at_import = (_floor(task, runtime, samples[0]["libraries_at_import"], env) if with_floor == "by phase"
                       else floor)
    return {
        "floor_cpu_ms": round(floor["cpu"] * 1000, 1),
        "floor_import_cpu_ms": round(floor_at_import["cpu"] * 1000, 1),
        "libraries": len(samples[0]["libraries"]),
        "libraries_at_import": len(samples[0]["libraries_at_import"]),
        "cpu_cold_ms": round(statistics.median(s["cpu_total"] - s["cpu_warm"] for s in samples) * 1000, 1),
        # per run, then the median (not a difference of medians)
        "cold_ms": round(statistics.median(s["import"] + s["first"] + s["extra"] - s["warm"] for s in samples)
                         * 1000, 1),
        "total_min_ms": round(min(s["import"] + s["first"] + s["extra"] for s in samples) * 1000, 1),
        "cpu_import_ms": round(statistics.median(s["cpu_import"] for s in samples) * 1000, 1),
        "cpu_total_ms": round(statistics.median(s["cpu_total"] for s in samples) * 1000, 1),
        "import_ms": round(statistics.median(s["import"] for s in samples) * 1000, 1),
        "first_ms": round(statistics.median(s["first"] for s in samples) * 1000, 1),
        "warm_ms": round(statistics.median(s["warm"] for s in samples) * 1000, 1),
        "extra_ms": round(statistics.median(s["extra"] for s in samples) * 1000, 1),
        "status": samples[0]["status"],
        "outcomes": "/".join(str(o) for o in samples[0]["outcomes"]),
        "modules": samples[0]["modules"],
    }


def _floor(task: Path, runtime: Path, libraries: list[str], env: dict) -> dict:
    """p50 of RUNS fresh interpreters importing only the library modules the function loaded (FLOOR_CHILD).
    Fails closed: a module that does not import alone would make the floor too low."""
    samples = []
    for _ in range(RUNS):
        result = subprocess.run(
            [sys.executable, "-S", "-s", "-B", "-c", FLOOR_CHILD, str(task), str(runtime)],
            input=json.dumps(libraries), capture_output=True, text=True, env=env, cwd=task, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the library floor of {task.name} failed:\n{result.stderr[-3000:]}")
        sample = json.loads(result.stdout.strip().splitlines()[-1])
        if sample["failed"]:
            raise AssertionError(f"library modules of {task.name} that do not import alone: {sample['failed'][:5]}")
        more = sorted(set(sample["loaded"]) - set(libraries))
        if more:  # imported alone they take another path: the floor would not be the run's libraries
            raise AssertionError(f"imported alone, {task.name}'s libraries load {len(more)} other modules: {more[:5]}")
        samples.append(sample)
    return {key: statistics.median(s[key] for s in samples) for key in ("wall", "cpu")}


def _import_profile(task: Path, runtime: Path, handler: str, source: Any, extra: str, env: dict) -> dict[str, float]:
    """`python -X importtime` of one more cold run: self time (ms) per top-level package, init and first
    event together (every import the cold path pays). Timing adds overhead: compare these with each other."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-S", "-s", "-B", "-c", CHILD, str(task), str(runtime), handler, extra],
        input=json.dumps(source.pair()), capture_output=True, text=True, env=env, cwd=task, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{handler} from {task} failed under -X importtime:\n{result.stderr[-3000:]}")
    source.settle(json.loads(result.stdout.strip().splitlines()[-1])["outcomes"])
    keep = os.environ.get(IMPORTTIME_DIR_ENV)
    if keep:  # the raw log, to read the import tree (who pulled what in)
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / f"{task.name}.importtime.txt").write_text(result.stderr)
    costs: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:"):].split("|", 2))
        top = name.split(".")[0]
        costs[top] = costs.get(top, 0.0) + int(self_us) / 1000
    return costs


def _top(costs: dict[str, float], n: int = TOP_IMPORTS) -> str:
    ranked = sorted(costs.items(), key=lambda item: -item[1])[:n]
    return ", ".join(f"{name} {ms:.0f}" for name, ms in ranked)


def _untouched(tree: Path) -> None:
    written = [p for p in tree.rglob("__pycache__") if not any(p.iterdir())] + [
        p for p in tree.rglob("*.pyc") if p.stat().st_mode & stat.S_IWUSR
    ]
    if written:
        raise AssertionError(f"the run wrote into the read-only task root: {written[:3]}")


def run() -> dict:
    from infra import artifacts
    from services import catalog
    from services.core import coldstart
    from services.core.settings import Settings
    from services.local.aws import (
        FAKE_CREDENTIALS,
        access_token,
        ensure_bucket,
        ensure_cognito,
        ensure_event_bus,
        ensure_user,
        jwks_url,
        start_moto,
    )
    from services.local.postgres import start

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log
    workdir = Path(tempfile.mkdtemp(prefix="collections-bench-cold-"))
    server = start(workdir / "pgdata", delete_on_stop=True)
    moto = start_moto()
    rows: list[dict] = []
    imports: list[dict] = []
    notes: list[str] = []
    try:
        url = server.create_database("bench_cold", exist_ok=False)
        from services.core import migrations

        migrations.upgrade(url)
        region, bucket, bus = "us-east-1", "collections-bench", "collections-bench"
        settings = Settings(aws_endpoint_url=moto.endpoint_url, bucket=bucket, event_bus=bus, aws_region=region)
        ensure_bucket(settings)
        ensure_event_bus(settings)
        cognito = ensure_cognito(settings, pool_name="collections-bench")
        user = (ensure_user(settings, cognito, USER), cognito.client_id, access_token(settings, cognito, USER))
        base_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            **FAKE_CREDENTIALS,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "DATABASE_URL": url,
            "COLLECTIONS_BUCKET": bucket,
            "COLLECTIONS_EVENT_BUS": bus,
            "COLLECTIONS_AUTH_MODE": "apigateway",
            "COLLECTIONS_COGNITO_USER_POOL_ID": cognito.user_pool_id,
            "COLLECTIONS_COGNITO_CLIENT_ID": cognito.client_id,
            "COLLECTIONS_COGNITO_JWKS_URL": jwks_url(settings, cognito),  # on AWS: the pool's, fetched the same way
            "POWERTOOLS_LOG_LEVEL": "WARNING",  # the stages' INFO outcome lines would fill the table
            # Set by Lambda in every function's environment; a plain cold start (services/core/coldstart.py).
            coldstart.INIT_TYPE: "on-demand",
        }
        runtime = _runtime_dir(workdir)
        compiler = artifacts.find_compiler(PYTHON)
        if compiler is None:
            raise RuntimeError(f"no Python {PYTHON} compiler found: the benchmark runs with it")
        pipeline = RealItems(url, settings, region)
        for label, (source, extra, env_extra) in _events(bucket, region, user, pipeline).items():
            fn = catalog.function(label.split()[0])
            figures = {}
            for variant, bytecode in (("source", False), ("bytecode", True)):
                artifact = artifacts.build_zip(
                    fn, ARCHITECTURE, build_dir=BUILD_DIR, python=PYTHON, bytecode=bytecode, check_limits=False
                )
                task = workdir / f"{fn.name}-{variant}"
                if not task.exists():
                    _extract(artifact.path, task)
                env = {**base_env, **env_extra}
                figures[variant] = _measure(task, runtime, fn.handler, source, extra, env,
                                            with_floor=bytecode and ("by phase" if label == "api" else True))
                if bytecode:
                    # The same build with the collector left alone (no init type: services/core/coldstart.py).
                    alone = {k: v for k, v in env.items() if k != coldstart.INIT_TYPE}
                    figures["collector on"] = _measure(task, runtime, fn.handler, source, extra, alone)
                    costs = _import_profile(task, runtime, fn.handler, source, extra, env)
                    imports.append({"function": label, "total_ms": round(sum(costs.values())),
                                    "top imports (self ms, by package)": _top(costs)})
                _untouched(task)
            src, pyc, gc_on = figures["source"], figures["bytecode"], figures["collector on"]
            if label == "api" and {src["status"], pyc["status"]} != {200}:
                raise AssertionError(f"the api's first request answered {src['status']}/{pyc['status']}, not 200")
            total = {v: f["import_ms"] + f["first_ms"] + f["extra_ms"] for v, f in figures.items()
                     if v != "collector on"}
            cold = {v: figures[v]["cold_ms"] for v in total}  # what being first cost
            rows.append(
                {
                    "function": label,
                    "import_src_ms": src["import_ms"],
                    "import_pyc_ms": pyc["import_ms"],
                    "first_src_ms": round(src["first_ms"] + src["extra_ms"], 1),
                    "first_pyc_ms": round(pyc["first_ms"] + pyc["extra_ms"], 1),
                    "total_src_ms": round(total["source"], 1),
                    "total_pyc_ms": round(total["bytecode"], 1),
                    "min_pyc_ms": pyc["total_min_ms"],
                    "cpu_src_ms": src["cpu_total_ms"],
                    "cpu_pyc_ms": pyc["cpu_total_ms"],
                    "src/pyc": round(total["source"] / total["bytecode"], 2),
                    "status": pyc["status"] if pyc["status"] is not None else pyc["outcomes"],
                    "modules": pyc["modules"],
                    "cpu_import_src_ms": src["cpu_import_ms"],
                    "cpu_import_pyc_ms": pyc["cpu_import_ms"],
                    "warm_pyc_ms": pyc["warm_ms"],
                    "cold_src_ms": round(cold["source"], 1),
                    "cold_pyc_ms": round(cold["bytecode"], 1),
                    "cpu_cold_src_ms": src["cpu_cold_ms"],
                    "cpu_cold_pyc_ms": pyc["cpu_cold_ms"],
                    "cpu_cold_collector_on_ms": gc_on["cpu_cold_ms"],
                    "libraries": pyc["libraries"],
                    "floor_cpu_ms": pyc["floor_cpu_ms"],
                    "above_floor_cpu_ms": round(pyc["cpu_cold_ms"] - pyc["floor_cpu_ms"], 1),
                    "libraries_at_import": pyc["libraries_at_import"],
                    "floor_import_cpu_ms": pyc["floor_import_cpu_ms"],
                }
            )
        notes.append(
            f"built with infra/artifacts.py for {ARCHITECTURE} / Python {PYTHON} (this machine; Lambda runs "
            f"{artifacts.LAMBDA_PYTHON}: the deploy builds with that Python, so its zips carry cpython-"
            f"{artifacts.LAMBDA_PYTHON.replace('.', '')} bytecode); p50 of {RUNS} fresh interpreters each, "
            "python -S -s -B, PYTHONDONTWRITEBYTECODE=1, read-only task root"
        )
        notes.append(
            "first_*: the handler's first invocation (api: GET /items through Mangum with a real token and the "
            "database; image_processor, analyzer, embedder: real items through the pipeline, a 1600x1200 JPEG "
            "upload, then the item each stage made, with the local analyzer and embedder; cleanup: a dry run; the "
            "Claude line: an unknown item, then importing the Claude adapter and its HTTP client); warm_pyc_ms: "
            "a second event of the same kind in the same process; cold_*_ms = total - warm: the cold import and "
            "what the first event paid for being first (imports, clients, connections), without the work "
            "every event does"
        )
        notes.append(
            "cpu_cold_*: CPU of the cold import and first event minus the warm event's (bytecode build; "
            "collector_on: the same build with the collector left alone, no init type set). floor_cpu_ms: a fresh "
            "interpreter of the same layout imports only the library modules the run loaded (libraries), in its "
            "order, collector paused as in an on-demand init: no code of ours, no I/O (the api's import line: the "
            "modules loaded by the end of init, floor_import_cpu_ms); above_floor_cpu_ms = cpu_cold_pyc_ms - "
            "floor_cpu_ms: our modules, and library work done at call time (botocore's models, pydantic schemas, "
            "SQL compilation), the clients, the first connection"
        )
        notes.append("import costs (python -X importtime, bytecode build, init + first event; the profiler adds "
                     "overhead):\n" + "\n".join(f"      {r['function']}: {r['total_ms']} ms: "
                                                  f"{r['top imports (self ms, by package)']}" for r in imports))
        notes.append(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        moto.stop()
        server.stop()
        for path in [workdir, *workdir.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "title": "Cold starts from each function's artifact (source only vs bytecode)",
        "rows": rows,
        "notes": notes,
        "imports": imports,
        "summary": _summary(rows),
    }


def _summary(rows: list[dict]) -> list[dict]:
    """The issue's cold-start lines: today (source only, as shipped) beside now (bytecode), and beside the
    target what the same library modules cost imported alone (CPU ms): a target below it is out of reach
    while the function loads those modules; only loading fewer or other ones gets there. The api lines are
    the user's whole wait; the stage lines are what the issue names, "cold import + first event's imports":
    the first event minus a warm one (cold_*), the full first event beside it."""
    by = {row["function"]: row for row in rows}
    stages = [by[n] for n in ("image_processor", "analyzer", "embedder", "cleanup")]
    worst_src = max(stages, key=lambda r: r["cold_src_ms"])
    worst_pyc = max(stages, key=lambda r: r["cold_pyc_ms"])
    api, claude = by["api"], by["analyzer with Claude configured"]
    lines = [
        ("api cold import, from its artifact (p50)", api["import_src_ms"], api["import_pyc_ms"],
         TARGETS_MS["api cold import"], api["cpu_import_src_ms"], api["cpu_import_pyc_ms"],
         {"floor_cpu_ms": api["floor_import_cpu_ms"], "libraries": api["libraries_at_import"]}, None, None),
        ("api first request of a fresh process (import + request)",
         api["import_src_ms"] + api["first_src_ms"], api["import_pyc_ms"] + api["first_pyc_ms"],
         TARGETS_MS["api first request"], api["cpu_src_ms"], api["cpu_pyc_ms"], api, None,
         api["cpu_cold_collector_on_ms"]),
        (f"each stage: cold import + first event's imports (worst: {worst_pyc['function']})",
         worst_src["cold_src_ms"], worst_pyc["cold_pyc_ms"], TARGETS_MS["stage cold import + first event"],
         worst_src["cpu_cold_src_ms"], worst_pyc["cpu_cold_pyc_ms"], worst_pyc, worst_pyc["total_pyc_ms"],
         worst_pyc["cpu_cold_collector_on_ms"]),
        ("analyzer with Claude configured (was: with the anthropic SDK), from its artifact", claude["cold_src_ms"],
         claude["cold_pyc_ms"], TARGETS_MS["analyzer with Claude configured"],
         claude["cpu_cold_src_ms"], claude["cpu_cold_pyc_ms"], claude, claude["total_pyc_ms"],
         claude["cpu_cold_collector_on_ms"]),
    ]
    return [
        {"measure": m, "today": f"{round(today)} ms (source only; cpu {round(cpu_today)})",
         "now": f"{round(now)} ms (bytecode; cpu {round(cpu_now)})", "target": f"≤ {target} ms",
         "ok": "yes" if now <= target else "NO",
         "its library modules alone (cpu)": f"{round(row['floor_cpu_ms'])} ms ({row['libraries']} modules)",
         "collector left alone (cpu)": "-" if gc_on is None else f"{round(gc_on)} ms",
         "first event in all": "-" if whole is None else f"{round(whole)} ms"}
        for m, today, now, target, cpu_today, cpu_now, row, whole, gc_on in lines
    ]
