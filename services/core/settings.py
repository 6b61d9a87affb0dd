"""Configuration: one module, and one settings class per program. Every variable is documented in
README.md ("Configuration").

Values come from the environment (on Lambda, set by the Pulumi program) or a `.env` file.
Application variables carry the `COLLECTIONS_` prefix; well-known ones keep their usual names.

Each program reads its own class, made of the groups of settings it uses: `ApiSettings`,
`ImageProcessorSettings`, `AnalyzerSettings`, `EmbedderSettings`, `CleanupSettings`,
`MigrateSettings` (keyed by the catalog's function names in `FUNCTION_SETTINGS`, each built from the
groups its catalog entry names in `settings_groups`: a new function needs no edit here), `ReleaseSettings`
(pipelines/, the release CLI) and `Settings`, all of them, for the dev runtime that runs every
function in one process. On AWS Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) a function's class refuses
to start without the variables listed in its `required_on_aws` (services/core/environment.py, where
handlers check them at import, before this module loads): a forgotten variable fails the cold start
with its name (`MissingSettings`) instead of quietly using a local default such as the bucket
`collections-local`. tests/infra checks that the Pulumi program sets every required variable of every
function.

`get_settings()`, which library code takes by default, is the running program's class:
- on AWS Lambda, the function's own class (`FUNCTION_SETTINGS[name]`, the function recorded by its
  handler's `for_function(name)`, services/core/observability.py), so code that reads a setting outside
  its function's class fails loudly (AttributeError) instead of getting a local default; asked before
  a handler recorded its function, it raises `UnknownFunction` rather than fall back on `Settings`;
- elsewhere (the dev runtime, the `collections` CLI, tests) `Settings`, the union.
Its type is therefore `ProgramSettings` (the common base). tests/services/test_function_settings_reads.py
reads each function's code and checks that every setting it can read is in the function's class.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import ClassVar, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services import catalog  # the connection budget's pool sizes (no third-party imports there)
from services.core import environment
from services.core.environment import REQUIRED_ON_AWS
from services.core.environment import MissingSettings as MissingSettings
from services.core.environment import UnknownFunction as UnknownFunction
from services.core.environment import on_aws_lambda as on_aws_lambda


def env_names(cls: type[BaseSettings], field: str) -> list[str]:
    """The environment variables a field is read from, the usual one first."""
    alias = cls.model_fields[field].validation_alias
    if alias is None:
        return [f"{cls.model_config.get('env_prefix', '')}{field}".upper()]
    if isinstance(alias, str):
        return [alias]
    return [str(choice) for choice in alias.choices]


class _Base(BaseSettings):
    """What every program reads: AWS, secrets caching and the metrics namespace."""

    # defer_build: a class builds its schema when first used; the groups and the other programs' never are.
    model_config = SettingsConfigDict(env_prefix="COLLECTIONS_", env_file=".env", extra="ignore", defer_build=True)

    # Groups of variables, one of each must be set on AWS Lambda (services/core/environment.py).
    required_on_aws: ClassVar[tuple[tuple[str, ...], ...]] = ()

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"),
        description="AWS region (set by Lambda).",
    )
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias="AWS_ENDPOINT_URL",
        description="Local AWS endpoint (moto). Unset on AWS.",
    )
    secrets_max_age_s: int = Field(
        default=300,
        ge=0,
        description="How long a Secrets Manager value is cached before it is read again (rotation).",
    )
    metrics_namespace: str = Field(
        default=environment.DEFAULT_METRICS_NAMESPACE,
        description="CloudWatch namespace of the functions' metrics (embedded metric format).",
    )

    @model_validator(mode="after")
    def _refuse_local_defaults_on_aws(self):
        environment.require(self.required_on_aws, type(self).__name__)
        return self


class _Database(_Base):
    """The database."""

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "COLLECTIONS_DATABASE_URL"),
        description="SQLAlchemy URL (postgresql+psycopg://...). Unset locally: the embedded server.",
    )
    database_secret_arn: str | None = Field(
        default=None, description="Secrets Manager secret with host/port/username/password/dbname (on AWS)."
    )
    db_pool_size: int = Field(
        default=catalog.DB_POOL_SIZE, ge=1, description="Connections kept per process (1 on Lambda)."
    )
    db_max_overflow: int = Field(
        default=catalog.DB_MAX_OVERFLOW, ge=0, description="Extra connections allowed beyond the pool."
    )
    # The schema's: services/core/models.py and the initial migration size the vector column with it at
    # import, in every function that has the database (the embedder and the api also size vectors with it).
    embedding_dimension: int = Field(default=1024, gt=0, le=16000, description="Vector size in the database.")
    db_pool_pre_ping: bool = Field(
        default=True,
        description="Test each pooled connection before use (a thawed Lambda container's may be closed); "
        "`make dev` turns it off: its local server's connections do not go stale, and it saves a round trip.",
    )
    db_statement_timeout_ms: int = Field(
        default=10_000,
        ge=0,
        description="Statement timeout that migration 0003 sets as the database role's default (ALTER ROLE).",
    )


class _Storage(_Base):
    """The S3 bucket."""

    bucket: str = Field(default="collections-local", description="S3 bucket for originals and thumbnails.")


class _Events(_Base):
    """The pipeline's event bus."""

    event_bus: str = Field(default="collections-local", description="EventBridge custom bus for pipeline events.")


class _Uploads(_Base):
    """Upload and download limits."""

    max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0, description="Largest accepted upload.")
    min_upload_bytes: int = Field(default=1, ge=1, description="Smallest accepted upload.")
    upload_url_ttl_s: int = Field(default=300, ge=30, le=3600, description="Presigned POST lifetime.")
    download_url_ttl_s: int = Field(default=300, ge=30, le=3600, description="Presigned GET lifetime.")


class _Auth(_Base):
    """Cognito tokens."""

    auth_mode: Literal["jwks", "apigateway"] = Field(
        default="jwks",
        description=(
            "jwks: verify the bearer token here; apigateway: that too, and API Gateway's JWT authorizer "
            "claims must name the same user."
        ),
    )
    cognito_user_pool_id: str = Field(default="", description="Cognito user pool id.")
    cognito_client_id: str = Field(default="", description="Cognito app client id (tokens must carry it).")
    cognito_issuer: str | None = Field(
        default=None, description="Token issuer; default https://cognito-idp.{region}.amazonaws.com/{pool}."
    )
    cognito_jwks_url: str | None = Field(
        default=None, description="JWKS URL; default {issuer}/.well-known/jwks.json (moto serves its own)."
    )
    jwks_cache_s: int = Field(default=3600, ge=0, description="How long fetched signing keys are kept.")

    @property
    def issuer(self) -> str:
        return self.cognito_issuer or (
            f"https://cognito-idp.{self.aws_region}.amazonaws.com/{self.cognito_user_pool_id}"
        )

    @property
    def jwks_url(self) -> str:
        return self.cognito_jwks_url or f"{self.issuer}/.well-known/jwks.json"


class _Claude(_Base):
    """The analyzer's model."""

    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias="ANTHROPIC_API_KEY", description="Claude API key; unset: local analyzer."
    )
    anthropic_base_url: str | None = Field(
        default=None, validation_alias="ANTHROPIC_BASE_URL", description="Anthropic API base URL (tests)."
    )
    anthropic_secret_arn: str | None = Field(default=None, description="Secrets Manager secret with the key.")
    analyzer_model: str = Field(default="claude-haiku-4-5", description="Claude model for image analysis.")
    # 30 s × (1 + 2 retries) stays inside the analyzer function's 120 s timeout (services/catalog.py).
    analyzer_timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    analyzer_max_retries: int = Field(default=2, ge=0, description="SDK retries (429/5xx).")


class _Voyage(_Base):
    """Embeddings (documents and search queries)."""

    voyage_api_key: SecretStr | None = Field(
        default=None, validation_alias="VOYAGE_API_KEY", description="Voyage API key; unset: local embedder."
    )
    voyage_base_url: str | None = Field(default=None, description="Voyage API base URL (tests point it locally).")
    voyage_secret_arn: str | None = Field(default=None, description="Secrets Manager secret with the key.")
    embedding_model: str = Field(default="voyage-3.5", description="Voyage embedding model.")
    embedding_timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    embedding_max_retries: int = Field(default=2, ge=0, description="SDK retries (429/5xx).")
    # A search embeds its query while the user waits, inside the api function's 15 s: fail fast. Two
    # attempts of at most 3 s, the pause between them and a slow read of the key from Secrets Manager
    # leave the request time to answer its 503 (tests/services/api/test_search_voyage.py).
    query_embedding_timeout_s: float = Field(
        default=3.0, gt=0, le=3, description="Per-attempt timeout of a search's query embedding."
    )
    query_embedding_max_retries: int = Field(
        default=1, ge=0, le=1, description="Retries of a search's query embedding (at most one)."
    )


class _Imaging(_Base):
    """Image decoding and thumbnails."""

    max_image_pixels: int = Field(default=50_000_000, gt=0, description="Decompression-bomb limit.")
    thumbnail_sizes: tuple[int, ...] = Field(default=(256, 1024), description="Long-edge sizes (JSON list).")


class _Stages(_Base):
    """Pipeline stages: leases on items and the pending timeout (the stage runner and cleanup)."""

    stage_lease_s: int | None = Field(
        default=None,
        ge=1,
        description="How long a stage's claim on an item lasts at least. On Lambda a claim lasts the "
        "invocation's remaining time plus a margin (services/catalog.py), longer if this is longer; "
        "elsewhere this, or unset the catalog's timeout plus the margin.",
    )
    pending_timeout_minutes: int = Field(
        default=catalog.pending_timeout_floor_minutes(),
        ge=1,
        description="Cleanup marks an item failed that waited this long at a stage's input status "
        "(e.g. an upload whose processing crashed or timed out); retry resumes it. At least the floor "
        "(services/catalog.py pending_timeout_floor_s): an item whose event Lambda may still deliver "
        "is never failed.",
    )

    @model_validator(mode="after")
    def _pending_timeout_not_below_the_floor(self) -> _Stages:
        floor = catalog.pending_timeout_floor_minutes(self.stage_lease_s)
        if self.pending_timeout_minutes >= floor:
            return self
        if "pending_timeout_minutes" not in self.model_fields_set:
            self.pending_timeout_minutes = floor  # the default follows a longer COLLECTIONS_STAGE_LEASE_S
            return self
        raise ValueError(
            f"COLLECTIONS_PENDING_TIMEOUT_MINUTES={self.pending_timeout_minutes} is below its floor of {floor} "
            f"minutes: Lambda may still deliver a throttled or retried event up to "
            f"{catalog.ASYNC_MAX_EVENT_AGE_S // 60} minutes after it was sent (the maximum event age), its "
            f"stage may then hold the item for a lease of up to "
            f"{max(self.stage_lease_s or 0, catalog.LAMBDA_MAX_TIMEOUT_S + catalog.STAGE_LEASE_MARGIN_S)} s, "
            f"and cleanup runs once an interval; an item failed sooner might only be queued. "
            f"Leave it unset or set at least {floor}."
        )


class _Cleanup(_Base):
    """What cleanup removes."""

    cleanup_orphan_hours: int = Field(default=24, ge=1, description="Age before orphans are removed.")
    cleanup_failed_retention_days: int = Field(default=30, ge=1, description="Failed items kept this long.")
    cleanup_batch: int = Field(default=500, ge=1, description="Most removals per cleanup run.")


class _Api(_Base):
    """Pages, searches and per-user limits of the HTTP API."""

    page_size_default: int = Field(default=20, ge=1, description="Items per page by default.")
    page_size_max: int = Field(default=100, ge=1, description="Largest page size accepted.")
    search_k_max: int = Field(default=100, ge=1, description="Largest k for search and similar.")
    query_max_chars: int = Field(default=500, ge=1, description="Longest text query accepted.")
    # Per-user limits (429 with Retry-After); 0 turns one off. Each search is a paid Voyage call and
    # each upload a paid Claude analysis (retries included), so these bound what one account costs.
    limit_pending_uploads: int = Field(
        default=20, ge=0, description="Upload forms per user not yet used or processed (within their lifetime)."
    )
    limit_uploads_per_day: int = Field(default=500, ge=0, description="Uploads per user per UTC day.")
    limit_searches_per_minute: int = Field(default=30, ge=0, description="Searches per user per minute.")
    limit_retries_per_day: int = Field(
        default=100, ge=0, description="Retries of failed items per user per UTC day (each may re-bill Claude)."
    )
    limit_reembeds_per_hour: int = Field(
        default=120, ge=0, description="Edits per user per hour that re-embed an item (each is a paid Voyage call)."
    )


class _Local(_Base):
    """The dev runtime (`make dev`)."""

    data_dir: str = Field(default=".collections", description="Embedded PostgreSQL data and local state.")
    api_port: int = Field(default=8000, description="Port of the local API (`make dev`).")
    moto_port: int = Field(default=5000, description="Port of the local moto server (`make dev`).")
    web_port: int = Field(default=8080, description="Port of the local web app (`make dev`).")


class _Release(_Base):
    """collections-release."""

    stack_outputs: str | None = Field(
        default=None,
        description="collections-release: the stack's outputs, as JSON text or a path to a JSON file (CI).",
    )


# --- what each program reads ----------------------------------------------------------------
# A function's class is made of the groups its catalog entry names (services/catalog.py Function.settings_groups).
SETTINGS_GROUPS: dict[str, type[_Base]] = {
    "database": _Database,
    "storage": _Storage,
    "events": _Events,
    "uploads": _Uploads,
    "auth": _Auth,
    "claude": _Claude,
    "voyage": _Voyage,
    "imaging": _Imaging,
    "stages": _Stages,
    "cleanup": _Cleanup,
    "api": _Api,
}


def _function_settings(function: catalog.Function) -> type[_Base]:
    """`image_processor` → ImageProcessorSettings(_Database, _Storage, ...), requiring on AWS what
    services/core/environment.py derives from the same groups. An unknown group is an error."""
    unknown = [group for group in function.settings_groups if group not in SETTINGS_GROUPS]
    if unknown:
        raise KeyError(f"function {function.name!r} names unknown settings groups {unknown} (services/catalog.py)")
    name = "".join(part.title() for part in function.name.split("_")) + "Settings"
    bases = tuple(SETTINGS_GROUPS[group] for group in function.settings_groups)
    namespace = {"__module__": __name__, "__qualname__": name, "required_on_aws": REQUIRED_ON_AWS[function.name]}
    return type(name, bases, namespace)


# Keyed by the catalog's function names, one class each.
FUNCTION_SETTINGS: dict[str, type[_Base]] = {fn.name: _function_settings(fn) for fn in catalog.FUNCTIONS}
ApiSettings = FUNCTION_SETTINGS["api"]
ImageProcessorSettings = FUNCTION_SETTINGS["image_processor"]
AnalyzerSettings = FUNCTION_SETTINGS["analyzer"]
EmbedderSettings = FUNCTION_SETTINGS["embedder"]
CleanupSettings = FUNCTION_SETTINGS["cleanup"]
MigrateSettings = FUNCTION_SETTINGS["migrate"]


class ReleaseSettings(_Release):
    """collections-release (pipelines/): the region, an endpoint for tests, the stack's outputs."""


class Settings(
    _Database, _Storage, _Events, _Uploads, _Auth, _Claude, _Voyage, _Imaging, _Stages, _Cleanup, _Api, _Local, _Release
):
    """Every setting: the dev runtime (all functions in one process) and library code's default."""


# What `get_settings()` returns: one program's class (a function's own on Lambda, `Settings` elsewhere).
ProgramSettings = _Base

required_variables = environment.required_variables


@lru_cache
def settings_for(function: str) -> ProgramSettings:
    """The function's own settings; on AWS Lambda, MissingSettings names what is not set."""
    return FUNCTION_SETTINGS[function]()


@lru_cache
def get_settings() -> ProgramSettings:
    """The running program's settings (cached: Lambda reads the environment once per container): on AWS
    Lambda the function's own class, elsewhere `Settings` (every setting: the dev runtime runs every
    function in one process)."""
    if not on_aws_lambda():
        return Settings()
    function = environment.current_function()
    if function is None:
        raise UnknownFunction(
            f"settings were asked for on AWS Lambda (function {os.environ.get(environment.LAMBDA_MARKER)}) before "
            "the handler recorded which catalog function this is: a handler module calls "
            "services.core.observability.for_function(name) before it imports anything that reads settings"
        )
    return settings_for(function)
