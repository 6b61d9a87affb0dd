"""Session-wide real services: one embedded PostgreSQL (+pgvector) and one moto server over HTTP.

Databases: migrations run once into a template database; each test module that asks for `db_url`
gets a fresh copy of it (CREATE DATABASE ... TEMPLATE is a file copy: milliseconds).

Environment: fake AWS credentials are set before anything imports boto3, so no test can reach AWS.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
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
