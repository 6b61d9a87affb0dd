"""Provisioned concurrency: traffic moves only onto warm environments.

The Pulumi program configures provisioned concurrency on the `live` alias; Lambda spreads an
alias's provisioned environments over its versions by routing weight, and reports the
configuration IN_PROGRESS while it (re)allocates. A version may also carry its own configuration.
Before each step a shift waits until the target version's configuration (if it has one), else the
alias's, is READY; FAILED or a timeout stops the shift before traffic moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.clock import Clock
from pipelines.errors import NotFound, ReleaseError, aws_errors


def status(lambda_client: Any, function_name: str, qualifier: str) -> dict[str, Any] | None:
    """get_provisioned_concurrency_config, or None where none is configured for that qualifier."""
    try:
        with aws_errors(f"reading provisioned concurrency of {function_name}:{qualifier}", lambda_client):
            return lambda_client.get_provisioned_concurrency_config(FunctionName=function_name, Qualifier=qualifier)
    except NotFound:
        return None


def wait_ready(
    lambda_client: Any,
    function_name: str,
    qualifier: str,
    clock: Clock,
    *,
    poll_s: float = 10,
    timeout_s: float = 900,
    progress: Callable[[str], None] = print,
) -> bool:
    """Wait until the qualifier's configuration is READY; False if it has none."""
    current = status(lambda_client, function_name, qualifier)
    if current is None:
        return False
    deadline = clock.now() + timeout_s
    where = f"{function_name}:{qualifier}"
    while True:
        state = current.get("Status", "IN_PROGRESS")
        if state == "READY":
            progress(f"provisioned concurrency on {where} is READY")
            return True
        if state == "FAILED":
            raise ReleaseError(f"provisioned concurrency on {where} FAILED: {current.get('StatusReason', '?')}")
        if clock.now() >= deadline:
            raise ReleaseError(f"provisioned concurrency on {where} not READY after {timeout_s:g} s (still {state})")
        progress(f"waiting for provisioned concurrency on {where} ({state})")
        clock.sleep(poll_s)
        current = status(lambda_client, function_name, qualifier)
        if current is None:  # deleted while we waited: nothing is warm there, so it is not READY
            raise ReleaseError(f"provisioned concurrency on {where} was removed while waiting for it to be READY; "
                               "restore it (`pulumi up --refresh`) and run the command again")


def wait_before_shift(lambda_client: Any, function_name: str, target: str, alias: str, clock: Clock,
                      **options: Any) -> str:
    """The target version's configuration if it has one, else the alias's; returns which was awaited."""
    if wait_ready(lambda_client, function_name, target, clock, **options):
        return target
    if wait_ready(lambda_client, function_name, alias, clock, **options):
        return alias
    return ""


def referenced_versions(lambda_client: Any, function_name: str) -> set[str]:
    """Qualifiers (versions or aliases) that carry provisioned concurrency."""
    with aws_errors(f"listing provisioned concurrency of {function_name}", lambda_client):
        pages = lambda_client.get_paginator("list_provisioned_concurrency_configs").paginate(
            FunctionName=function_name
        )
        configs = [c for page in pages for c in page.get("ProvisionedConcurrencyConfigs", [])]
    return {c["FunctionArn"].rsplit(":", 1)[-1] for c in configs}
