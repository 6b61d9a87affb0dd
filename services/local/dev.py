"""`make dev`: the whole service on one machine, in one process.

Embedded PostgreSQL (data in `{data_dir}/pgdata`, kept across runs), moto's AWS server on
127.0.0.1 with the bucket (its objects saved to `{data_dir}/s3` on stop and put back on start,
since moto keeps them in memory), bus, Cognito pool and demo user, migrations, the catalog's triggers
wired as EventBridge rules → SQS queues with the worker's threads invoking the handlers, and the
API under uvicorn. Ctrl-C (or SIGTERM) stops everything it started.

While it runs, `{data_dir}/runtime.json` says where everything is, so other commands
(`collections token`, `demo`, `migrate`, `cleanup`, ...) can reach the same environment.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from services.core.settings import Settings, get_settings
from services.local.postgres import watch as postgres_watch

if TYPE_CHECKING:
    from services.local.aws import MotoServer
    from services.local.postgres import EmbeddedPostgres
    from services.local.worker import Worker
    from services.web.devserver import WebServer

log = logging.getLogger(__name__)

# `make dev`'s log level. Read from the environment here rather than from Settings, because only this
# entry point of the dev runtime logs through it (Lambda functions log through powertools).
LOG_LEVEL_VARIABLE = "COLLECTIONS_LOG_LEVEL"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

RUNTIME_FILE = "runtime.json"
OBJECTS_FOLDER = "s3"  # the bucket's objects between runs
EMBEDDED_DATABASE = "collections"
DEMO_USER = "demo@example.com"
# moto draws ids from its own seeded random: with a fixed seed the pool id and the demo user's
# `sub` are the same on every run, so items kept in PostgreSQL still belong to the demo user.
MOTO_SEED = 461
# A handler that raises is retried after this many seconds (SQS visibility timeout). On AWS the
# retry comes after Lambda's backoff (a minute or more); locally a short wait keeps `make dev`
# responsive, e.g. when a stage sees an item whose previous stage has not committed yet.
DEV_RETRY_DELAY_S = 3
# The API's worker threads (anyio's limiter; 40 by default) and the database pool, sized together:
# a connection for every API thread and every pipeline worker thread (one per triggered function),
# so under load requests queue for a thread, not for a connection. (Lambda keeps pool size 1.)
DEV_API_THREADS = 8


class DevError(RuntimeError):
    """A problem the person running the command can fix; printed without a traceback."""


@dataclass(frozen=True)
class RuntimeState:
    """Where the running dev environment's pieces are (written to runtime.json while it runs)."""

    pid: int
    api_url: str
    aws_endpoint_url: str
    region: str
    bucket: str
    event_bus: str
    user_pool_id: str
    client_id: str
    jwks_url: str
    database_url: str
    demo_user: str
    web_url: str = ""

    def environment(self) -> dict[str, str]:
        """The variables that point this project's settings (and boto3) at the running environment."""
        from services.local.aws import FAKE_CREDENTIALS

        return {
            **FAKE_CREDENTIALS,  # moto takes any; boto3 refuses to sign without some
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_REGION": self.region,
            "DATABASE_URL": self.database_url,
            "COLLECTIONS_BUCKET": self.bucket,
            "COLLECTIONS_EVENT_BUS": self.event_bus,
            "COLLECTIONS_COGNITO_USER_POOL_ID": self.user_pool_id,
            "COLLECTIONS_COGNITO_CLIENT_ID": self.client_id,
            "COLLECTIONS_COGNITO_JWKS_URL": self.jwks_url,
        }


def state_path(settings: Settings) -> Path:
    return Path(settings.data_dir).expanduser() / RUNTIME_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(settings: Settings | None = None) -> RuntimeState:
    """The running environment's state; DevError if none is running."""
    settings = settings or get_settings()
    path = state_path(settings)
    try:
        data = json.loads(path.read_text())
        state = RuntimeState(**data)
    except FileNotFoundError:
        raise DevError(f"no dev environment is running (no {path}); start one with `make dev`") from None
    except (ValueError, TypeError) as error:
        raise DevError(f"{path} is unreadable ({error}); restart `make dev`") from None
    if not _pid_alive(state.pid):
        raise DevError(f"the dev environment recorded in {path} (pid {state.pid}) is gone; start `make dev`")
    return state


def apply_environment(variables: dict[str, str], *, override: bool = True) -> None:
    """Set process environment variables and drop the caches built from the old ones."""
    from services.core import aws, database

    for key, value in variables.items():
        if override or key not in os.environ:
            os.environ[key] = value
    get_settings.cache_clear()
    database.reset()
    aws.reset()


def embedded_database(settings: Settings) -> tuple[EmbeddedPostgres, str]:
    """Start (or attach to) the embedded server in `{data_dir}/pgdata`; the app database's URL."""
    from services.local import postgres

    server = postgres.start(Path(settings.data_dir).expanduser() / "pgdata")
    return server, server.create_database(EMBEDDED_DATABASE)


def _ensure_port_free(port: int, what: str, setting: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise DevError(
                f"port {port} on 127.0.0.1 is taken, so the {what} cannot listen there; "
                f"stop what uses it or choose another port with {setting}"
            ) from None


def _seed_moto(endpoint_url: str) -> None:
    import httpx

    httpx.post(f"{endpoint_url}/moto-api/seed", params={"a": MOTO_SEED}, timeout=10).raise_for_status()


def save_objects(settings: Settings, folder: Path) -> int:
    """Copy every object of the bucket to `folder` (moto keeps S3 in memory only)."""
    from services.core.storage import Storage

    storage = Storage(settings)
    staging = folder.with_name(folder.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    index: dict[str, dict[str, str]] = {}
    for number, summary in enumerate(storage.list("")):
        key = summary["Key"]
        response = storage.s3.get_object(Bucket=storage.bucket, Key=key)
        # Files are numbered, not named by key: a key is not a safe path.
        name = f"{number:08d}"
        (staging / name).write_bytes(response["Body"].read())
        index[key] = {"file": name, "content_type": response.get("ContentType") or "application/octet-stream"}
    (staging / "index.json").write_text(json.dumps(index, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return len(index)


def restore_objects(settings: Settings, folder: Path) -> int:
    """Put back what save_objects kept. Run before the rules exist, so nothing is reprocessed."""
    from services.core.storage import Storage

    index_path = folder / "index.json"
    if not index_path.exists():
        return 0
    storage = Storage(settings)
    index = json.loads(index_path.read_text())
    for key, entry in index.items():
        storage.write(key, (folder / entry["file"]).read_bytes(), entry["content_type"])
    return len(index)


def _dev_pool() -> dict[str, str]:
    """Pool settings for the dev server, unless set explicitly."""
    from services import catalog

    workers = sum(1 for function in catalog.FUNCTIONS if function.triggers)
    pool = {
        "COLLECTIONS_DB_POOL_SIZE": str(DEV_API_THREADS + workers),
        "COLLECTIONS_DB_MAX_OVERFLOW": "4",
        # The embedded server's connections are not frozen and thawed as a Lambda container's are, and
        # `make dev` stops when that server dies: a ping before every checkout would be a wasted round trip.
        "COLLECTIONS_DB_POOL_PRE_PING": "false",
    }
    return {key: value for key, value in pool.items() if key not in os.environ}


def ai_mode(settings: Settings) -> str:
    analyzer = "Claude" if settings.anthropic_api_key or settings.anthropic_secret_arn else "local stand-in"
    embedder = "Voyage" if settings.voyage_api_key or settings.voyage_secret_arn else "local stand-in"
    return f"analyzer: {analyzer}, embedder: {embedder}"


def banner(state: RuntimeState, token: str, settings: Settings, database_note: str) -> str:
    return "\n".join(
        [
            "",
            "Collections is running locally.",
            f"  App        {state.web_url}   (signed in as {state.demo_user})",
            f"  API        {state.api_url}   (docs: {state.api_url}/docs)",
            f"  Health     {state.api_url}/health   (200 when the API and its database are ready, else 503)",
            f"  AWS (moto) {state.aws_endpoint_url}   bucket {state.bucket}, event bus {state.event_bus}",
            f"  Database   {database_note}",
            f"  AI         {ai_mode(settings)}",
            f"  Demo user  {state.demo_user}",
            "",
            "Access token for the demo user (valid 1 h; `collections token` prints a fresh one):",
            f"  {token}",
            "",
            "Try:",
            f"  curl -s {state.api_url}/health",
            f'  curl -s -H "Authorization: Bearer {token}" "{state.api_url}/items"',
            "",
            "Upload sample images with `make demo`. Ctrl-C stops everything.",
            "",
        ]
    )


def web_origin(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.web_port}"


def serve_web_app(state: RuntimeState, settings: Settings) -> WebServer:
    """The browser app on COLLECTIONS_WEB_PORT, signed in as the demo user on moto's Cognito."""
    from services.local.aws import DEMO_PASSWORD
    from services.web.devserver import serve_for_dev

    return serve_for_dev(
        port=settings.web_port, api_url=state.api_url, aws_endpoint_url=state.aws_endpoint_url,
        region=state.region, client_id=state.client_id, demo_user=state.demo_user, demo_password=DEMO_PASSWORD,
        max_upload_bytes=settings.max_upload_bytes,
    )


class DevEnvironment:
    """Starts the pieces in order and stops whatever was started, in reverse."""

    def __init__(self, settings: Settings | None = None, out: TextIO | None = None):
        self.settings = settings or get_settings()
        self.out = out or sys.stdout
        self.postgres: EmbeddedPostgres | None = None
        self.moto: MotoServer | None = None
        self.worker: Worker | None = None
        self.web: WebServer | None = None
        self.state: RuntimeState | None = None
        self.token = ""
        self.database_note = ""
        self.exit_code = 0
        self._watch: threading.Event | None = None

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self, *, run_worker: bool = True) -> RuntimeState:
        """Everything but the API server. `run_worker=False` leaves `self.worker` unstarted, for
        callers that drive it themselves (`Worker.drain`, benchmarks)."""
        from services.core import migrations
        from services.local import aws as local_aws
        from services.local.runtime import wire
        from services.local.worker import Worker

        settings = self.settings
        try:
            running = read_state(settings)
        except DevError:
            pass
        else:
            raise DevError(f"a dev environment is already running (pid {running.pid}, {running.api_url})")
        _ensure_port_free(settings.api_port, "API", "COLLECTIONS_API_PORT")
        _ensure_port_free(settings.moto_port, "AWS emulator (moto)", "COLLECTIONS_MOTO_PORT")
        _ensure_port_free(settings.web_port, "web app", "COLLECTIONS_WEB_PORT")
        Path(settings.data_dir).expanduser().mkdir(parents=True, exist_ok=True)

        if settings.database_url:
            database_url = settings.database_url
            database_note = "DATABASE_URL"
        else:
            self.say(f"Starting embedded PostgreSQL in {Path(settings.data_dir) / 'pgdata'} ...")
            self.postgres, database_url = embedded_database(settings)
            database_note = f"embedded PostgreSQL, data in {self.postgres.data_dir}"

        self.say(f"Starting the AWS emulator (moto) on 127.0.0.1:{settings.moto_port} ...")
        self.moto = local_aws.start_moto(settings.moto_port)
        _seed_moto(self.moto.endpoint_url)
        apply_environment({"AWS_ENDPOINT_URL": self.moto.endpoint_url, "DATABASE_URL": database_url, **_dev_pool()})
        settings = self.settings = get_settings()

        local_aws.ensure_bucket(settings, cors_origins=[web_origin(settings)])
        local_aws.ensure_event_bus(settings)
        app = local_aws.ensure_cognito(settings)
        local_aws.ensure_user(settings, app, DEMO_USER)
        restored = restore_objects(settings, self.objects_folder)
        if restored:
            self.say(f"Restored {restored} object(s) into the bucket from {self.objects_folder}")
        jwks_url = local_aws.jwks_url(settings, app)
        apply_environment(
            {
                "COLLECTIONS_COGNITO_USER_POOL_ID": app.user_pool_id,
                "COLLECTIONS_COGNITO_CLIENT_ID": app.client_id,
                "COLLECTIONS_COGNITO_JWKS_URL": jwks_url,
            }
        )
        settings = self.settings = get_settings()

        self.say("Applying database migrations ...")
        migrations.upgrade(database_url)

        wiring = wire(settings, visibility_timeout_s=DEV_RETRY_DELAY_S)
        # One message at a time per queue: a message never waits in a local batch while its
        # visibility timeout runs out.
        self.worker = Worker(wiring, settings, batch_size=1)
        if run_worker:
            self.worker.start()

        self.state = RuntimeState(
            pid=os.getpid(),
            api_url=f"http://127.0.0.1:{settings.api_port}",
            aws_endpoint_url=self.moto.endpoint_url,
            region=settings.aws_region,
            bucket=settings.bucket,
            event_bus=settings.event_bus,
            user_pool_id=app.user_pool_id,
            client_id=app.client_id,
            jwks_url=jwks_url,
            database_url=database_url,
            demo_user=DEMO_USER,
            web_url=web_origin(settings),
        )
        self.web = serve_web_app(self.state, settings)
        state_path(settings).write_text(json.dumps(asdict(self.state), indent=2))
        self.token = local_aws.access_token(settings, app, DEMO_USER)
        self.database_note = database_note
        return self.state

    def serve(self) -> None:
        """Serve the API until SIGINT/SIGTERM (uvicorn handles both, then re-raises them)."""
        import uvicorn
        from starlette.middleware.cors import CORSMiddleware

        from services.api.app import create_app
        from services.web.devserver import api_cors

        assert self.state is not None, "start() first"
        text = banner(self.state, self.token, self.settings, self.database_note)

        class AnnouncingServer(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                import anyio.to_thread

                anyio.to_thread.current_default_thread_limiter().total_tokens = DEV_API_THREADS
                await super().startup(sockets)
                # Only once the socket listens: the printed curl commands must work right away.
                if self.started:
                    announce(text)

        announce = self.say
        if self.postgres is not None:
            self._watch = postgres_watch(self.postgres.alive, self._postgres_died)
        api = create_app()
        # API Gateway's CORS, locally: only the app's origin may call the API from a browser.
        api.add_middleware(CORSMiddleware, **api_cors(self.state.web_url))
        config = uvicorn.Config(
            api, host="127.0.0.1", port=self.settings.api_port, log_level=log_level().lower(), lifespan="on"
        )
        AnnouncingServer(config).run()

    def _postgres_died(self) -> None:
        """The embedded PostgreSQL is gone (killed, crashed, out of disk): serving on would answer
        503 forever, so say what happened and stop everything, as Ctrl-C would."""
        assert self.postgres is not None
        self.say(
            f"\nPostgreSQL (data in {self.postgres.data_dir}) stopped unexpectedly; see "
            f"{self.postgres.data_dir / 'log'}. Stopping; start `make dev` again."
        )
        self.exit_code = 1
        os.kill(os.getpid(), signal.SIGINT)

    @property
    def objects_folder(self) -> Path:
        return Path(self.settings.data_dir).expanduser() / OBJECTS_FOLDER

    def _save_objects(self) -> None:
        saved = save_objects(self.settings, self.objects_folder)
        self.say(f"Saved {saved} object(s) from the bucket to {self.objects_folder}")

    def stop(self) -> None:
        from services.core import database

        if self._watch is not None:
            self._watch.set()  # stopping PostgreSQL on purpose below
        errors: list[str] = []
        for name, action in (
            ("worker", self.worker.stop if self.worker else None),
            ("web app", self.web.stop if self.web else None),
            ("saving the bucket", self._save_objects if self.state and self.moto else None),
            ("database connections", database.reset),
            ("moto", self.moto.stop if self.moto else None),
            ("PostgreSQL", self.postgres.stop if self.postgres else None),
        ):
            if action is None:
                continue
            try:
                action()
            except Exception as error:  # keep stopping the rest
                errors.append(f"{name}: {error}")
        if self.state is not None:
            state_path(self.settings).unlink(missing_ok=True)
        self.worker = self.moto = self.postgres = self.web = None
        self.state = None
        if errors:
            self.say("Stopped, with errors: " + "; ".join(errors))
        else:
            self.say("Stopped.")


def log_level() -> str:
    """INFO unless COLLECTIONS_LOG_LEVEL says otherwise: the runtime's own lines (what it wired and
    started) and uvicorn's, one per request. Benchmarks set WARNING, so a loaded server doesn't
    write a line per request; warnings and errors still show."""
    value = os.environ.get(LOG_LEVEL_VARIABLE, "INFO").strip().upper()
    if value not in LOG_LEVELS:
        raise SystemExit(f"{LOG_LEVEL_VARIABLE}={value!r} is not a log level; use one of {', '.join(LOG_LEVELS)}")
    return value


def _terminate_as_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(settings: Settings | None = None, out: TextIO | None = None) -> int:
    """`collections dev`: start, serve until interrupted, stop. Returns the exit code."""
    level = log_level()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("services.local").setLevel(level)
    # moto's request log would print a line per queue poll.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # SIGTERM behaves like Ctrl-C, so what was started is stopped either way.
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    environment = DevEnvironment(settings, out)
    try:
        environment.start()
        environment.serve()
    except KeyboardInterrupt:
        pass
    finally:
        environment.say("Stopping ...")
        environment.stop()
    return environment.exit_code
