"""Fixtures for the Pulumi program's tests: each test runs the program afresh under the mocks.

Artifacts are built into one session folder with a code-only installer (no PyPI), so a run costs
the program's own work; the real pip build has its own test (test_artifacts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.mocks import ProgramRun, run_program

SERVICES = "collections:services"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("infra-build")


@pytest.fixture
def program(build_dir) -> Callable[..., ProgramRun]:
    """program("dev", overrides, deployed=...) → a fresh mock run of infra/__main__.py."""

    def run(stack: str, overrides: dict[str, Any] | None = None, **kwargs: Any) -> ProgramRun:
        kwargs.setdefault("build_dir", build_dir)
        return run_program(stack, overrides, **kwargs)

    return run


def slots(service: str, active: str = "blue", **packages: str) -> dict[str, Any]:
    """Config overrides for one service's slots, e.g. slots("api", "green", blue="zip", green="image")."""
    return {SERVICES: {service: {"active": active, "slots": {s: {"package": p} for s, p in packages.items()}}}}
