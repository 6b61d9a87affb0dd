"""Fixtures for the Pulumi program's tests: each test runs the program afresh under the mocks.

Artifacts are built into one session folder with a code-only installer (no PyPI), so a run costs
the program's own work; the real pip build has its own test (test_artifacts.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.mocks import ProgramRun, run_program
from infra.plan import Plan, plan_between

SERVICES = "collections:services"


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("infra-build")


@pytest.fixture(scope="session")
def source(tmp_path_factory) -> Path:
    """A snapshot of the services package: a plan compares two runs of the same code unless a
    test changes it on purpose (the working tree may change while the suite runs)."""
    from infra import artifacts

    snapshot = tmp_path_factory.mktemp("source") / "services"
    shutil.copytree(artifacts.SOURCE_PACKAGE, snapshot, ignore=shutil.ignore_patterns("__pycache__"))
    return snapshot


@pytest.fixture
def program(build_dir, source) -> Callable[..., ProgramRun]:
    """program("dev", overrides, deployed=...) → a fresh mock run of infra/__main__.py."""

    def run(stack: str, overrides: dict[str, Any] | None = None, **kwargs: Any) -> ProgramRun:
        kwargs.setdefault("build_dir", build_dir)
        kwargs.setdefault("source_root", source)
        return run_program(stack, overrides, **kwargs)

    return run


@pytest.fixture
def plan_of(build_dir, source) -> Callable[..., Plan]:
    """plan_of("dev", before_overrides, after_overrides, ...) → infra.plan.plan_between on the snapshot."""

    def run(stack: str, before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
            **kwargs: Any) -> Plan:
        kwargs.setdefault("build_dir", build_dir)
        kwargs.setdefault("before_source", source)
        kwargs.setdefault("after_source", source)
        return plan_between(stack, before, after, **kwargs)

    return run


def slots(service: str, active: str = "blue", **packages: str) -> dict[str, Any]:
    """Config overrides for one service's slots, e.g. slots("api", "green", blue="zip", green="image").

    With an image slot, SnapStart goes off (dev's api has it): Lambda has no SnapStart for images and
    config validation refuses the pair, so turning it off is the operator's first step of that move."""
    service_config: dict[str, Any] = {"active": active, "slots": {s: {"package": p} for s, p in packages.items()}}
    if "image" in packages.values():
        service_config["snapStart"] = False
    return {SERVICES: {service: service_config}}
