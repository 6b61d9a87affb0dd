"""End-to-end fixtures: `collections dev` as a real subprocess on free ports with its own data folder."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
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
        self.env = {k: v for k, v in os.environ.items() if k not in _LEAKY and not k.startswith("COLLECTIONS_")}
        self.env.update(
            COLLECTIONS_DATA_DIR=str(data_dir),
            COLLECTIONS_API_PORT=str(self.api_port),
            COLLECTIONS_MOTO_PORT=str(self.moto_port),
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
def dev_factory(tmp_path) -> Iterator:
    started: list[DevProcess] = []

    def make(data_dir: Path | None = None) -> DevProcess:
        dev = DevProcess(data_dir or tmp_path / "data")
        started.append(dev)
        return dev

    yield make
    for dev in started:  # a failed test must not leave servers behind
        if dev.process is not None and dev.process.poll() is None:
            try:
                dev.interrupt(timeout=30)
            except Exception:
                dev.kill()
