"""Session-wide real services: one embedded PostgreSQL (+pgvector), a PgBouncer in front of it (started
only when a test asks for it), and one moto server over HTTP.

Databases: migrations run once into a template database; each test module that asks for `db_url`
gets a fresh copy of it (CREATE DATABASE ... TEMPLATE is a file copy: milliseconds).

Environment: fake AWS credentials are set before anything imports boto3, so no test can reach AWS.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.local.aws import FAKE_CREDENTIALS

for _key, _value in {**FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
    os.environ[_key] = _value
for _key in ("ANTHROPIC_API_KEY", "VOYAGE_API_KEY", "DATABASE_URL", "AWS_PROFILE"):
    os.environ.pop(_key, None)

TEMPLATE_DB = "collections_template"


def reset_caches() -> None:
    """Settings, engines and boto3 clients are cached per process; drop them after env changes."""
    from services.core import aws, database
    from services.core.settings import get_settings

    get_settings.cache_clear()
    database.reset()
    aws.reset()


@pytest.fixture(scope="session")
def pg():
    from services.core import migrations
    from services.local.postgres import start

    data_dir = Path(tempfile.mkdtemp(prefix="collections-test-pg-")) / "data"
    server = start(data_dir, delete_on_stop=True)
    template_url = server.create_database(TEMPLATE_DB, exist_ok=False)
    migrations.upgrade(template_url)
    yield server
    server.stop()


# Debian installs PgBouncer in /usr/sbin, which is not on every user's PATH.
PGBOUNCER_PATHS = ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer", "/usr/bin/pgbouncer")
PGBOUNCER_POOL_SIZE = 5  # server connections per (database, user): fewer than clients, so sessions share them
# The login roles PgBouncer lets in: the embedded server's superuser and an application role that, like
# the role in the prod connection secret, is no superuser (tests/services/test_pooler.py creates it).
PGBOUNCER_USERS = ("postgres", "collections_app")


@dataclass
class PgBouncer:
    """A PgBouncer in transaction-pooling mode in front of the embedded server (`url(db, user)`)."""

    port: int
    log_file: Path
    process: subprocess.Popen

    def url(self, database: str, user: str) -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/{database}"

    def libpq(self, database: str, user: str) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def _pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or next((p for p in PGBOUNCER_PATHS if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail("pgbouncer is not installed; `make test` installs it (Debian: apt-get install pgbouncer)")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def pgbouncer(pg) -> Iterator[PgBouncer]:
    """PgBouncer as a stand-in for RDS Proxy: transaction pooling (server connections are shared between
    client sessions per transaction) and no startup `options`. Like RDS Proxy it refuses startup
    parameters it does not know; `ignore_startup_parameters` lists only extra_float_digits, which
    RDS Proxy accepts (drivers such as JDBC send it). PgBouncer refuses to run as root: as root it
    runs as the user that owns the embedded server's data (pgserver's unprivileged user)."""
    # postmaster.pid: pid, data dir, start time, port, socket directory, ...
    lines = (pg.data_dir / "postmaster.pid").read_text().splitlines()
    server_port, socket_dir = int(lines[3]), lines[4]
    work = Path(tempfile.mkdtemp(prefix="collections-test-pgbouncer-"))
    work.chmod(0o755)  # readable by the unprivileged user
    users_file, log_file, config = work / "users.txt", work / "pgbouncer.log", work / "pgbouncer.ini"
    users_file.write_text("".join(f'"{user}" ""\n' for user in PGBOUNCER_USERS))
    log_file.touch()
    port = _free_port()
    config.write_text(
        "[databases]\n"
        f"* = host={socket_dir} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {users_file}\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {PGBOUNCER_POOL_SIZE}\nmax_client_conn = 200\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"logfile = {log_file}\n"
    )
    for path in (users_file, log_file, config):
        path.chmod(0o666 if path == log_file else 0o644)
    command = [_pgbouncer_binary()]
    if os.geteuid() == 0:
        command += ["-u", pwd.getpwuid(pg.data_dir.stat().st_uid).pw_name]
    process = subprocess.Popen([*command, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port=port, log_file=log_file, process=process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"pgbouncer exited with {process.returncode}: {bouncer.log()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"pgbouncer did not listen on {port}: {bouncer.log()[-2000:]}")
            time.sleep(0.05)
    yield bouncer
    process.terminate()
    process.wait(timeout=10)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def db_url(pg, monkeypatch_module) -> Iterator[str]:
    """A fresh, migrated database for this test module; DATABASE_URL points at it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg.create_database(name, template=TEMPLATE_DB, exist_ok=False)
    monkeypatch_module.setenv("DATABASE_URL", url)
    reset_caches()
    yield url
    reset_caches()
    pg.drop_database(name)


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="session")
def moto_server():
    from services.local.aws import start_moto

    server = start_moto(port=0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def aws(moto_server, monkeypatch_module) -> Iterator[str]:
    """AWS_ENDPOINT_URL on moto, with a bucket and bus of this module's own (names are unique)."""
    from services.core.settings import get_settings
    from services.local.aws import ensure_bucket, ensure_event_bus

    suffix = uuid.uuid4().hex[:8]
    monkeypatch_module.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch_module.setenv("COLLECTIONS_BUCKET", f"collections-test-{suffix}")
    monkeypatch_module.setenv("COLLECTIONS_EVENT_BUS", f"collections-test-{suffix}")
    reset_caches()
    settings = get_settings()
    ensure_bucket(settings)
    ensure_event_bus(settings)
    yield moto_server.endpoint_url
    reset_caches()
