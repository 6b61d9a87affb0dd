"""Provisioned-concurrency waits, with botocore's Stubber (moto does not serve this API)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from pipelines.concurrency import wait_before_shift, wait_ready
from pipelines.errors import ReleaseError
from tests.pipelines.conftest import FakeClock

FN = "collections-dev-api-blue"


@pytest.fixture
def stubbed():
    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _status(stubber, state, reason=""):
    body = {"Status": state, "RequestedProvisionedConcurrentExecutions": 2}
    if reason:
        body["StatusReason"] = reason
    stubber.add_response("get_provisioned_concurrency_config", body, {"FunctionName": FN, "Qualifier": "7"})


def test_waits_until_ready(stubbed):
    client, stubber = stubbed
    for state in ("IN_PROGRESS", "IN_PROGRESS", "READY"):
        _status(stubber, state)
    clock, messages = FakeClock(), []
    assert wait_ready(client, FN, "7", clock, poll_s=5, progress=messages.append) is True
    assert clock.slept == [5, 5]
    assert messages[-1].endswith("is READY")


def test_a_version_without_configuration_falls_back_to_the_alias(stubbed):
    client, stubber = stubbed
    stubber.add_client_error("get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException",
                             http_status_code=404, expected_params={"FunctionName": FN, "Qualifier": "7"})
    alias = {"FunctionName": FN, "Qualifier": "live"}
    stubber.add_response("get_provisioned_concurrency_config", {"Status": "IN_PROGRESS"}, alias)
    stubber.add_response("get_provisioned_concurrency_config", {"Status": "READY"}, alias)
    clock = FakeClock()
    assert wait_before_shift(client, FN, "7", "live", clock, poll_s=3, progress=lambda m: None) == "live"
    assert clock.slept == [3]


def test_a_configuration_removed_while_waiting_is_not_ready(stubbed):
    """GetProvisionedConcurrencyConfig answers ProvisionedConcurrencyConfigNotFoundException once it is deleted."""
    client, stubber = stubbed
    _status(stubber, "IN_PROGRESS")
    stubber.add_client_error("get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException",
                             http_status_code=404, expected_params={"FunctionName": FN, "Qualifier": "7"})
    with pytest.raises(ReleaseError, match="was removed while waiting"):
        wait_ready(client, FN, "7", FakeClock(), poll_s=5, progress=lambda m: None)


def test_failed_allocation_stops_the_shift(stubbed):
    client, stubber = stubbed
    _status(stubber, "FAILED", reason="not enough unreserved concurrency")
    with pytest.raises(ReleaseError, match="FAILED: not enough unreserved concurrency"):
        wait_ready(client, FN, "7", FakeClock(), progress=lambda m: None)


def test_gives_up_after_the_timeout(stubbed):
    client, stubber = stubbed
    for _ in range(4):
        _status(stubber, "IN_PROGRESS")
    with pytest.raises(ReleaseError, match="not READY after 30 s"):
        wait_ready(client, FN, "7", FakeClock(), poll_s=10, timeout_s=30, progress=lambda m: None)


def test_shift_waits_for_provisioned_concurrency_before_moving_traffic(deploy):
    """A shift of a service with provisioned concurrency: the PC calls stubbed, the alias on moto."""
    d = deploy(versions=2, pc=3)
    ctx = d.context()
    real = ctx.lambda_client
    stubbed_client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(stubbed_client)
    order: list[str] = []

    class Mixed:
        def __getattr__(self, name):
            if "provisioned_concurrency" in name:
                order.append(name)
                return getattr(stubbed_client, name)
            if name == "update_alias":
                order.append(name)
            return getattr(real, name)

    # before 10 %: version 2 has no configuration of its own, the alias's is still allocating
    stubber.add_client_error("get_provisioned_concurrency_config", "ProvisionedConcurrencyConfigNotFoundException",
                             http_status_code=404, expected_params={"FunctionName": d.function, "Qualifier": "2"})
    alias = {"FunctionName": d.function, "Qualifier": "live"}
    stubber.add_response("get_provisioned_concurrency_config", {"Status": "IN_PROGRESS"}, alias)
    stubber.add_response("get_provisioned_concurrency_config", {"Status": "READY"}, alias)
    # before 100 %: version 2 now has its share, READY
    stubber.add_response("get_provisioned_concurrency_config", {"Status": "READY"},
                         {"FunctionName": d.function, "Qualifier": "2"})
    ctx.lambda_client = Mixed()
    from pipelines.shift import Shift
    from pipelines.strategies import parse

    with stubber:
        Shift(ctx, parse("canary:10:0"), poll_s=2).run()
    stubber.assert_no_pending_responses()
    get = "get_provisioned_concurrency_config"
    assert order == [get, get, get, "update_alias", get, "update_alias"]
    assert d.alias() == {"version": "2", "weights": {}}
