"""The topology of Collections: every Lambda function, its handler, triggers, sizing and needs.

This module is the single source of truth. The Pulumi program (infra/) builds AWS resources from
it and the local runtime (services/local/) wires the same triggers on moto; tests check that both
agree. It must stay free of third-party imports: infra and Lambda both load it.

Adding a function is one entry in FUNCTIONS plus its package under services/. Adding a pipeline
stage is one entry in STAGES (README, "Adding a stage"): status order, the stages' input statuses,
the contracts' Literals, the API's visible statuses, retry and the functions' triggers follow from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

PIPELINE_SOURCE = "collections.pipeline"
UPLOADS_PREFIX = "uploads/"
THUMBNAILS_PREFIX = "thumbnails/"
# Verified originals: written only by the image processor. The api role signs the presigned POSTs,
# so it must never be able to write here (an uploader could then replace a verified original).
ORIGINALS_PREFIX = "originals/"

# Detail-types on the custom bus. Contracts (pydantic models) live in services/core/contracts.py.
PROCESSING_REQUESTED = "ProcessingRequested"  # retry of the first stage (the S3 event cannot be replayed)
IMAGE_PROCESSED = "ImageProcessed"
IMAGE_ANALYZED = "ImageAnalyzed"
IMAGE_READY = "ImageReady"
ITEM_FAILED = "ItemFailed"
ITEM_EDITED = "ItemEdited"  # a user's edit of title/description/tags: the embedder embeds the item again
DETAIL_TYPES = (PROCESSING_REQUESTED, IMAGE_PROCESSED, IMAGE_ANALYZED, IMAGE_READY, ITEM_FAILED, ITEM_EDITED)

Architecture = Literal["arm64", "x86_64"]


# --------------------------------------------------------------------------------------------
# The pipeline: one declared table of stages (services/core/stage_runner.py runs them)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PipelineStage:
    """One stage: it takes an item at `input_status` to `output_status`.

    `consumes`: the detail-types on the custom bus that start it (the first is the one retry emits);
    `emits`: the detail-type published once the item reaches `output_status`; `function`: the
    catalog function that runs it; `work`: "module.Class" of its work (imported on the first event);
    `starts_on_upload`: the S3 "Object Created" of an upload starts it too."""

    name: str
    input_status: str
    output_status: str
    consumes: tuple[str, ...]
    emits: str
    function: str
    work: str
    starts_on_upload: bool = False


STAGES: tuple[PipelineStage, ...] = (
    PipelineStage(
        name="process",
        input_status="pending",
        output_status="processed",
        consumes=(PROCESSING_REQUESTED,),
        emits=IMAGE_PROCESSED,
        function="image_processor",
        work="services.image_processor.logic.ImageProcessor",
        starts_on_upload=True,
    ),
    PipelineStage(
        name="analyze",
        input_status="processed",
        output_status="analyzed",
        consumes=(IMAGE_PROCESSED,),
        emits=IMAGE_ANALYZED,
        function="analyzer",
        work="services.analyzer.logic.ImageAnalyzer",
    ),
    PipelineStage(
        name="embed",
        input_status="analyzed",
        output_status="ready",
        consumes=(IMAGE_ANALYZED,),
        emits=IMAGE_READY,
        function="embedder",
        work="services.embedder.logic.ItemEmbedder",
    ),
)
STAGES_BY_NAME: dict[str, PipelineStage] = {s.name: s for s in STAGES}
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
# The happy path, in order: each stage's input, then the last stage's output.
STATUS_ORDER: tuple[str, ...] = (*(s.input_status for s in STAGES), STAGES[-1].output_status)
FAILED_STATUS = "failed"
DELETED_STATUS = "deleted"  # soft-deleted: invisible to every read, removed by cleanup
ITEM_STATUSES: tuple[str, ...] = (*STATUS_ORDER, FAILED_STATUS, DELETED_STATUS)
VISIBLE_STATUSES: tuple[str, ...] = (*STATUS_ORDER, FAILED_STATUS)


def stage(name: str) -> PipelineStage:
    try:
        return STAGES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown stage {name!r}; the catalog has: {', '.join(STAGE_NAMES)}") from None


def stage_with_input(status: str) -> PipelineStage | None:
    """The stage an item at `status` waits for (None past the pipeline or out of it)."""
    return next((s for s in STAGES if s.input_status == status), None)


def stage_with_output(status: str) -> PipelineStage:
    return next(s for s in STAGES if s.output_status == status)


def stage_of_function(function_name: str) -> PipelineStage:
    return next(s for s in STAGES if s.function == function_name)


def _check_stages() -> None:
    """The table is a chain: each stage starts where the previous one ended and consumes what it emits."""
    for before, after in zip(STAGES, STAGES[1:], strict=False):
        if after.input_status != before.output_status or before.emits not in after.consumes:
            raise ValueError(f"stage {after.name!r} does not follow {before.name!r} in services/catalog.py STAGES")


_check_stages()


# --------------------------------------------------------------------------------------------
# Triggers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    """One API Gateway route. `authorized=False` only for routes that must work without a token."""

    method: str
    path: str
    authorized: bool = True

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass(frozen=True)
class HttpTrigger:
    routes: tuple[Route, ...]
    kind: Literal["http"] = "http"


@dataclass(frozen=True)
class ObjectCreatedTrigger:
    """S3 "Object Created" for the bucket, delivered by EventBridge on the default bus."""

    prefix: str = UPLOADS_PREFIX
    kind: Literal["s3"] = "s3"

    def event_pattern(self, bucket: str) -> dict:
        return {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [bucket]}, "object": {"key": [{"prefix": self.prefix}]}},
        }


@dataclass(frozen=True)
class PipelineEventTrigger:
    """Events of the given detail-types on the custom bus."""

    detail_types: tuple[str, ...]
    kind: Literal["event"] = "event"

    def event_pattern(self) -> dict:
        return {"source": [PIPELINE_SOURCE], "detail-type": list(self.detail_types)}


@dataclass(frozen=True)
class ScheduleTrigger:
    """An EventBridge schedule expression, e.g. ``rate(1 hour)``."""

    expression: str
    kind: Literal["schedule"] = "schedule"


Trigger = HttpTrigger | ObjectCreatedTrigger | PipelineEventTrigger | ScheduleTrigger


def stage_triggers(function_name: str, also: tuple[str, ...] = ()) -> tuple[Trigger, ...]:
    """The triggers of the function that runs a stage, from STAGES: the upload's S3 event where the
    stage starts on it, and the stage's detail-types (plus `also`, events the function handles
    beside its stage) on the custom bus."""
    s = stage_of_function(function_name)
    upload: tuple[Trigger, ...] = (ObjectCreatedTrigger(),) if s.starts_on_upload else ()
    return (*upload, PipelineEventTrigger((*s.consumes, *also)))


# --------------------------------------------------------------------------------------------
# Needs: secrets and AWS permissions, as data. infra/ turns them into least-privilege IAM.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Access:
    """An AWS permission on one of the stack's resources.

    `resource` names a stack resource kind: "bucket" (with `prefix`), "event_bus", "secret".
    """

    actions: tuple[str, ...]
    resource: Literal["bucket", "event_bus"]
    prefix: str = ""


READ_UPLOADS = Access(("s3:GetObject",), "bucket", UPLOADS_PREFIX)
WRITE_UPLOADS = Access(("s3:PutObject",), "bucket", UPLOADS_PREFIX)  # presigned POSTs are signed as the api
DELETE_UPLOADS = Access(("s3:DeleteObject",), "bucket", UPLOADS_PREFIX)
READ_THUMBNAILS = Access(("s3:GetObject",), "bucket", THUMBNAILS_PREFIX)
WRITE_THUMBNAILS = Access(("s3:PutObject",), "bucket", THUMBNAILS_PREFIX)
DELETE_THUMBNAILS = Access(("s3:DeleteObject",), "bucket", THUMBNAILS_PREFIX)
# What a missing object looks like, agreed between IAM and code (services/core/storage.py):
# GetObject/HeadObject of a key that does not exist answers 404 NoSuchKey only to a caller that may
# s3:ListBucket the bucket, and 403 AccessDenied to anyone else (S3 API Reference, GetObject and
# HeadObject, "Permissions"). Whether a ListBucket scoped by an s3:prefix condition counts is not
# documented (the request has no s3:prefix of its own), so every function that reads objects holds
# LIST_BUCKET with no condition; the bucket holds nothing but uploads/ and thumbnails/, which those
# functions read anyway. The code takes only 404 for "missing"; a 403 stays an error (a permission
# problem must never look like a deleted upload to cleanup or the pipeline).
# tests/services/test_storage_missing.py checks both sides.
READ_ORIGINALS = Access(("s3:GetObject",), "bucket", ORIGINALS_PREFIX)
WRITE_ORIGINALS = Access(("s3:PutObject",), "bucket", ORIGINALS_PREFIX)
DELETE_ORIGINALS = Access(("s3:DeleteObject",), "bucket", ORIGINALS_PREFIX)
LIST_BUCKET = Access(("s3:ListBucket",), "bucket")
PUBLISH_EVENTS = Access(("events:PutEvents",), "event_bus")


# Lambda runtime dependency groups: what each function's package installs (lower bounds match
# pyproject.toml). The zip artifact and the container image install exactly the group.
BASE_REQUIREMENTS = (
    "pydantic>=2.7",
    "pydantic-settings>=2.4",
    "sqlalchemy>=2.0.30",
    "psycopg[binary]>=3.2",
    "pgvector>=0.3",
    "pyjwt[crypto]>=2.14.0",
    "urllib3>=2",
    "aws-lambda-powertools>=3.0",
)
DEPENDENCY_GROUPS: dict[str, tuple[str, ...]] = {
    # Voyage is reached over its REST API with urllib3 (services/core/ai/voyage.py): the voyageai SDK
    # would pull numpy, Pillow and tokenizers and push these zips past Lambda's 50 MB.
    "api": (*BASE_REQUIREMENTS, "fastapi>=0.115", "mangum>=0.19", "fastapi-offline>=1.7.7"),
    "image": (*BASE_REQUIREMENTS, "pillow>=11"),
    # Claude too is reached over its REST API (services/core/ai/claude.py): no anthropic SDK, no httpx.
    "analyzer": (*BASE_REQUIREMENTS, "pillow>=11"),
    "embedder": BASE_REQUIREMENTS,
    "worker": BASE_REQUIREMENTS,
    "migrate": (*BASE_REQUIREMENTS, "alembic>=1.13"),
}


# --------------------------------------------------------------------------------------------
# The database connection budget: reserved concurrency of the model stages (README, "Connection budget")
# --------------------------------------------------------------------------------------------
# The database's connection limit is set, not assumed: the program sets PostgreSQL's max_connections to
# DATABASE_MAX_CONNECTIONS in the instance's DB parameter group on every RDS stack (infra/components/database.py).
# RDS's default, LEAST({DBInstanceClassMemory/9531392}, 5000), is below what the class's nominal memory gives:
# DBInstanceClassMemory is what is left after "memory reserved for the operating system and RDS management
# processes", and is "smaller than the value in gibibytes (GiB)" of the instance class table (RDS User Guide,
# "Maximum number of database connections"); how much smaller is not documented per class. So a 1 GiB class
# does not give 2**30 / 9531392 = 112. infra/connection_budget.py refuses an instance class that cannot afford
# this figure with a margin, and an instance class it does not know.
DATABASE_MAX_CONNECTIONS = 80
# Each Lambda instance has its own SQLAlchemy pool (services/core/database.py; the settings' defaults):
# it keeps DB_POOL_SIZE connections open while it lives and may open DB_MAX_OVERFLOW more.
DB_POOL_SIZE = 1
DB_MAX_OVERFLOW = 2
CONNECTIONS_PER_INSTANCE = DB_POOL_SIZE + DB_MAX_OVERFLOW
# Slots RDS for PostgreSQL keeps from ordinary roles: "max_connections - superuser_reserved_connections -
# rds.rds_superuser_reserved_connections", defaults 3 and 2 (AWS Knowledge Center, "FATAL: remaining connection
# slots are reserved for non replicate superuser connections"). The 3 are for real superusers (RDS's own
# rdsadmin); the 2 for rds_superuser members, which the master user the services log in as is: they do not hold
# against the services, so the budget leaves them free itself.
RDS_RESERVED_CONNECTIONS = 3 + 2
OPERATOR_CONNECTIONS = 5  # an operator's psql, a dashboard, `make dev` tools pointed at the stack
# Kept out of the stages' reach: RDS's reserved slots, cleanup and migrate (reserved concurrency 1 each), and
# an operator's sessions. Of the rest, half is for the stages that call a model and a quarter for the image
# processor: uploads scale all three, so each has a reserved concurrency that fits its share. The last quarter
# is the API's (it scales with requests and cannot be reserved without refusing them).
CLEANUP_AND_MIGRATE_CONNECTIONS = (1 + 1) * CONNECTIONS_PER_INSTANCE
CONNECTIONS_KEPT = RDS_RESERVED_CONNECTIONS + CLEANUP_AND_MIGRATE_CONNECTIONS + OPERATOR_CONNECTIONS
MODEL_STAGE_FUNCTIONS = ("analyzer", "embedder")
MODEL_STAGE_CONNECTIONS = (DATABASE_MAX_CONNECTIONS - CONNECTIONS_KEPT) // 2
IMAGE_PROCESSOR_CONNECTIONS = (DATABASE_MAX_CONNECTIONS - CONNECTIONS_KEPT) // 4


def model_stage_concurrency() -> int:
    """Reserved concurrency of each model stage: its share of the budget, in Lambda instances."""
    return MODEL_STAGE_CONNECTIONS // len(MODEL_STAGE_FUNCTIONS) // CONNECTIONS_PER_INSTANCE


def image_processor_concurrency() -> int:
    """Reserved concurrency of the image processor (~0.2 s an image: 5 instances make ~1,500 a minute)."""
    return IMAGE_PROCESSOR_CONNECTIONS // CONNECTIONS_PER_INSTANCE


@dataclass(frozen=True)
class Function:
    name: str
    handler: str  # "module.path.attribute", importable from the package root
    description: str
    # The groups of settings its code reads (services/core/settings.py SETTINGS_GROUPS builds the function's
    # settings class from them, services/core/environment.py what it requires on AWS; a test proves the code
    # reads nothing else). An unknown group name fails at import.
    settings_groups: tuple[str, ...] = ("database",)
    triggers: tuple[Trigger, ...] = ()
    memory_mb: int = 512
    timeout_s: int = 30
    architecture: Architecture = "arm64"
    dependency_group: str = "worker"
    secrets: tuple[Literal["anthropic", "voyage", "database"], ...] = ("database",)
    access: tuple[Access, ...] = ()
    reserved_concurrency: int | None = None
    # Invoked by the deploy (not by a trigger): the migrate function runs on each deploy whose
    # migrations changed.
    invoke_on_deploy: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.handler.rsplit(".", 1)[0]

    @property
    def attribute(self) -> str:
        return self.handler.rsplit(".", 1)[1]

    def triggers_of(self, kind: str) -> tuple[Trigger, ...]:
        return tuple(t for t in self.triggers if t.kind == kind)


API_ROUTES = (
    Route("GET", "/health", authorized=False),
    Route("GET", "/openapi.json", authorized=False),
    Route("GET", "/docs", authorized=False),
    Route("GET", "/docs/{asset}", authorized=False),  # Swagger UI's own files, served from a package
    Route("POST", "/uploads"),
    Route("GET", "/items"),
    Route("GET", "/items/{item_id}"),
    Route("PATCH", "/items/{item_id}"),
    Route("DELETE", "/items/{item_id}"),
    Route("POST", "/items/{item_id}/retry"),
    Route("GET", "/items/{item_id}/similar"),
    Route("GET", "/search"),
)

FUNCTIONS: tuple[Function, ...] = (
    Function(
        name="api",
        handler="services.api.handler.handler",
        description="HTTP API: items, uploads, search (FastAPI through Mangum)",
        settings_groups=("database", "storage", "events", "uploads", "auth", "voyage", "imaging", "api"),
        triggers=(HttpTrigger(API_ROUTES),),
        memory_mb=1024,
        timeout_s=15,
        dependency_group="api",
        secrets=("database", "voyage"),
        access=(
            WRITE_UPLOADS,
            READ_UPLOADS,  # presigned GETs are signed as the api: a missing object answers the browser 404
            READ_ORIGINALS,  # presigned GETs of verified originals; never WRITE_ORIGINALS
            READ_THUMBNAILS,
            LIST_BUCKET,
            DELETE_UPLOADS,
            DELETE_THUMBNAILS,
            PUBLISH_EVENTS,
        ),
    ),
    Function(
        name="image_processor",
        handler="services.image_processor.handler.handler",
        description="Validates uploads, makes WebP thumbnails, records sha256 and dimensions",
        settings_groups=("database", "storage", "events", "uploads", "imaging", "stages"),
        triggers=stage_triggers("image_processor"),
        memory_mb=2048,
        timeout_s=60,
        dependency_group="image",
        access=(
            READ_UPLOADS,
            DELETE_UPLOADS,  # objects that cannot be attributed to their item are removed
            WRITE_ORIGINALS,  # the verified copy the API serves
            WRITE_THUMBNAILS,
            READ_THUMBNAILS,
            LIST_BUCKET,
            PUBLISH_EVENTS,
        ),
        reserved_concurrency=image_processor_concurrency(),
    ),
    Function(
        name="analyzer",
        handler="services.analyzer.handler.handler",
        description="Describes each image with Claude (structured output)",
        settings_groups=("database", "storage", "events", "imaging", "claude", "stages"),
        triggers=stage_triggers("analyzer"),
        memory_mb=1024,
        timeout_s=120,
        dependency_group="analyzer",
        secrets=("database", "anthropic"),
        access=(READ_THUMBNAILS, LIST_BUCKET, PUBLISH_EVENTS),
        reserved_concurrency=model_stage_concurrency(),
    ),
    Function(
        name="embedder",
        handler="services.embedder.handler.handler",
        description="Embeds each analysis with Voyage AI into pgvector",
        settings_groups=("database", "events", "voyage", "stages"),
        triggers=stage_triggers("embedder", also=(ITEM_EDITED,)),
        memory_mb=512,
        timeout_s=60,
        dependency_group="embedder",
        secrets=("database", "voyage"),
        access=(PUBLISH_EVENTS,),
        reserved_concurrency=model_stage_concurrency(),
    ),
    Function(
        name="cleanup",
        handler="services.cleanup.handler.handler",
        description="Removes orphans, stale pending rows, soft-deleted and expired failed items",
        settings_groups=("database", "storage", "uploads", "imaging", "stages", "cleanup"),
        triggers=(ScheduleTrigger("rate(1 hour)"),),
        memory_mb=512,
        timeout_s=300,
        dependency_group="worker",
        access=(LIST_BUCKET, READ_UPLOADS, DELETE_UPLOADS, DELETE_ORIGINALS, DELETE_THUMBNAILS),
        reserved_concurrency=1,
    ),
    Function(
        name="migrate",
        handler="services.migrate.handler.handler",
        description="Applies database migrations (invoked on deploy)",
        settings_groups=("database",),
        memory_mb=512,
        timeout_s=300,
        dependency_group="migrate",
        reserved_concurrency=1,
        invoke_on_deploy=True,
    ),
)

FUNCTIONS_BY_NAME: dict[str, Function] = {f.name: f for f in FUNCTIONS}


def function(name: str) -> Function:
    try:
        return FUNCTIONS_BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(FUNCTIONS_BY_NAME))
        raise KeyError(f"unknown function {name!r}; the catalog has: {known}") from None


# --------------------------------------------------------------------------------------------
# How long an item may wait at a stage's input before cleanup fails it (README, "Pending timeout")
# --------------------------------------------------------------------------------------------
# Lambda keeps retrying an asynchronous event (EventBridge, S3 notifications, schedules) that was
# throttled (the model stages have reserved concurrency) or failed for up to its maximum event age: at
# most 6 h (Lambda Developer Guide, "How Lambda handles errors and retries with asynchronous
# invocation"). infra/components/lambda_service.py sets it on every asynchronously invoked function.
ASYNC_MAX_EVENT_AGE_S = 6 * 3600
# The longest a Lambda invocation can run; a stack config's timeoutS may raise a function's timeout to it
# (infra/config.py), so a lease (services/core/stage_runner.py) may last this long plus its margin.
LAMBDA_MAX_TIMEOUT_S = 900
STAGE_LEASE_MARGIN_S = 30  # a lease outlives its invocation by this much (Lambda stops one at its timeout)

_RATE_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}


def schedule_interval_s(expression: str) -> int:
    """Seconds between runs of a ``rate(N unit)`` schedule expression."""
    if not (expression.startswith("rate(") and expression.endswith(")")):
        raise ValueError(f"not a rate expression: {expression!r}")
    value, unit = expression[len("rate(") : -1].split()
    return int(value) * _RATE_UNITS[unit]


def pending_timeout_floor_s(stage_lease_s: int | None = None) -> int:
    """The shortest wait at a stage's input after which cleanup may fail an item: its event may still be
    delivered up to ASYNC_MAX_EVENT_AGE_S after it was sent, the stage may then hold the item for its
    longest lease (a configured COLLECTIONS_STAGE_LEASE_S, or the longest invocation plus the margin),
    and cleanup only looks once per run of its schedule. Earlier, an item only queued could be failed."""
    longest_lease = max(stage_lease_s or 0, LAMBDA_MAX_TIMEOUT_S + STAGE_LEASE_MARGIN_S)
    (schedule,) = function("cleanup").triggers_of("schedule")
    assert isinstance(schedule, ScheduleTrigger)
    return ASYNC_MAX_EVENT_AGE_S + longest_lease + schedule_interval_s(schedule.expression)


def pending_timeout_floor_minutes(stage_lease_s: int | None = None) -> int:
    return -(-pending_timeout_floor_s(stage_lease_s) // 60)  # rounded up
