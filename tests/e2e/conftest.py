"""End-to-end fixtures: `collections dev` as a real subprocess on free ports with its own data folder."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = Path(sys.executable).with_name("collections")
READY_LINE = "Ctrl-C stops everything."
# Everything this project reads from the environment that must not leak in from the test session.
_LEAKY = ("DATABASE_URL", "AWS_ENDPOINT_URL", "COLLECTIONS_BUCKET", "COLLECTIONS_EVENT_BUS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DevProcess:
    """One `collections dev` run: its output lines, and helpers to wait for and stop it."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.api_port = free_port()
        self.moto_port = free_port()
        self.web_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if k not in _LEAKY and not k.startswith("COLLECTIONS_")}
        self.env.update(
            COLLECTIONS_DATA_DIR=str(data_dir),
            COLLECTIONS_API_PORT=str(self.api_port),
            COLLECTIONS_MOTO_PORT=str(self.moto_port),
            COLLECTIONS_WEB_PORT=str(self.web_port),
            PYTHONUNBUFFERED="1",
        )
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 180) -> str:
        """Start and return the banner once the API serves (what `make dev` prints)."""
        self.process = subprocess.Popen(
            [str(COLLECTIONS), "dev"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self.wait_for(READY_LINE, timeout)

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def wait_for(self, text: str, timeout: float) -> str:
        """Collect output until a line contains `text`; everything so far is returned."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {text!r} in the output:\n" + "\n".join(self.lines)) from None
            if line is None:
                raise AssertionError(f"exited before {text!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if text in line:
                return "\n".join(self.lines)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `collections` command against this environment."""
        return subprocess.run(
            [str(COLLECTIONS), *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300
        )

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C, as a terminal sends it; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout)
        while (line := self._lines.get(timeout=5)) is not None:
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder for data the embedded PostgreSQL must reach. Not tmp_path: as root, PostgreSQL runs
    as another user, and each new pytest session resets /tmp/pytest-of-<user> to mode 0700."""
    folder = Path(tempfile.mkdtemp(prefix="collections-e2e-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def dev_factory(scratch) -> Iterator:
    started: list[DevProcess] = []

    def make(data_dir: Path | None = None) -> DevProcess:
        dev = DevProcess(data_dir or scratch / "data")
        started.append(dev)
        return dev

    yield make
    for dev in started:  # a failed test must not leave servers behind
        if dev.process is not None and dev.process.poll() is None:
            try:
                dev.interrupt(timeout=30)
            except Exception:
                dev.kill()


# --- in-process pipeline: the API app, moto, the catalog wiring and the worker ----------------
@pytest.fixture(scope="module")
def demo_token(db_url, aws, monkeypatch_module) -> str:
    """A Cognito pool of this module's own on moto, the API configured to trust it, a user's token."""
    import uuid

    from services.core.settings import get_settings
    from services.local.aws import access_token, ensure_cognito, ensure_user, jwks_url
    from tests.conftest import reset_caches

    settings = get_settings()
    app = ensure_cognito(settings, pool_name=f"collections-e2e-{uuid.uuid4().hex[:8]}")
    ensure_user(settings, app, "demo@example.com")
    monkeypatch_module.setenv("COLLECTIONS_AUTH_MODE", "jwks")
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_USER_POOL_ID", app.user_pool_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_CLIENT_ID", app.client_id)
    monkeypatch_module.setenv("COLLECTIONS_COGNITO_JWKS_URL", jwks_url(settings, app))
    reset_caches()
    return access_token(get_settings(), app, "demo@example.com")


@pytest.fixture(scope="module")
def worker(demo_token):
    from services.core.settings import get_settings
    from services.local.runtime import wire
    from services.local.worker import Worker

    # Real catalog handlers; a short visibility timeout so a transient failure retries quickly.
    return Worker(wire(get_settings(), visibility_timeout_s=1), get_settings())


@pytest.fixture(scope="module")
def api(demo_token):
    from fastapi.testclient import TestClient

    from services.api.app import create_app
    from services.local.demo import ApiSession

    with TestClient(create_app()) as client:
        yield ApiSession(client, demo_token)
