"""Provisioned concurrency: a new version gets its warm environments before it gets traffic.

Where the stack configures provisioned concurrency for a service, a shift first allocates the same
count on the target version (if it has none) and waits until Lambda says READY, so the first
shifted requests do not meet cold starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.clock import Clock
from pipelines.errors import NotFound, ReleaseError, aws_errors


def status(lambda_client: Any, function_name: str, qualifier: str) -> dict[str, Any] | None:
    """get_provisioned_concurrency_config, or None where none is configured for that qualifier."""
    try:
        with aws_errors(f"reading provisioned concurrency of {function_name}:{qualifier}"):
            return lambda_client.get_provisioned_concurrency_config(FunctionName=function_name, Qualifier=qualifier)
    except NotFound:
        return None


def wait_ready(
    lambda_client: Any,
    function_name: str,
    version: str,
    count: int,
    clock: Clock,
    *,
    poll_s: float = 10,
    timeout_s: float = 900,
    progress: Callable[[str], None] = print,
) -> None:
    current = status(lambda_client, function_name, version)
    if current is None:
        progress(f"allocating provisioned concurrency {count} on {function_name}:{version}")
        with aws_errors(f"allocating provisioned concurrency on {function_name}:{version}"):
            lambda_client.put_provisioned_concurrency_config(
                FunctionName=function_name, Qualifier=version, ProvisionedConcurrentExecutions=count
            )
        current = status(lambda_client, function_name, version) or {"Status": "IN_PROGRESS"}
    deadline = clock.now() + timeout_s
    while True:
        state = current.get("Status", "IN_PROGRESS")
        if state == "READY":
            progress(f"provisioned concurrency on {function_name}:{version} is READY")
            return
        if state == "FAILED":
            raise ReleaseError(
                f"provisioned concurrency on {function_name}:{version} FAILED: {current.get('StatusReason', '?')}; "
                "nothing was shifted"
            )
        if clock.now() >= deadline:
            raise ReleaseError(
                f"provisioned concurrency on {function_name}:{version} not READY after {timeout_s:g} s "
                f"(still {state}); nothing was shifted"
            )
        progress(f"waiting for provisioned concurrency on {function_name}:{version} ({state})")
        clock.sleep(poll_s)
        current = status(lambda_client, function_name, version) or {"Status": "IN_PROGRESS"}


def referenced_versions(lambda_client: Any, function_name: str) -> set[str]:
    """Qualifiers (versions or aliases) that carry provisioned concurrency."""
    with aws_errors(f"listing provisioned concurrency of {function_name}"):
        pages = lambda_client.get_paginator("list_provisioned_concurrency_configs").paginate(
            FunctionName=function_name
        )
        configs = [c for page in pages for c in page.get("ProvisionedConcurrencyConfigs", [])]
    return {c["FunctionArn"].rsplit(":", 1)[-1] for c in configs}
