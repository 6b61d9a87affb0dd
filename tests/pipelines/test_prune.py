"""prune keeps every referenced version (aliases, weights, records, locks, provisioned concurrency)."""

from __future__ import annotations

import pytest
from botocore.stub import Stubber

from pipelines.errors import ReleaseError
from pipelines.prune import prune
from pipelines.shift import Shift
from pipelines.strategies import parse


def test_prune_keeps_every_referenced_version(deploy):
    d = deploy(versions=9)  # live on 1
    Shift(d.context(), parse("all-at-once"), to="3").run()  # stable 3, previous 1
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="3",
                                 RoutingConfig={"AdditionalVersionWeights": {"5": 0.2}})
    d.lambda_client.create_alias(FunctionName=d.function, Name="canary-test", FunctionVersion="4")
    d.context(lock_owner="someone").lock().acquire("shift api to v6", target="6")
    result = prune(d.context(), keep=2)
    assert result.reasons == {
        "1": "recorded previous (rollback target)", "3": "alias live", "4": "alias canary-test",
        "5": "alias live weight", "6": "target of the shift locked by someone", "8": "newest 2", "9": "newest 2",
    }
    assert result.deleted == ["2", "7"]
    remaining = [v["Version"] for v in d.lambda_client.list_versions_by_function(FunctionName=d.function)["Versions"]]
    assert sorted(v for v in remaining if v != "$LATEST") == ["1", "3", "4", "5", "6", "8", "9"]


def test_prune_dry_run_deletes_nothing(deploy):
    d = deploy(versions=4)
    result = prune(d.context(), keep=1, dry_run=True)
    assert result.deleted == ["2", "3"]
    assert len(d.lambda_client.list_versions_by_function(FunctionName=d.function)["Versions"]) == 5


def test_prune_keep_must_be_positive(deploy):
    d = deploy(versions=1)
    with pytest.raises(ReleaseError, match="--keep"):
        prune(d.context(), keep=0)


def test_prune_keeps_versions_with_provisioned_concurrency(deploy):
    """moto has no provisioned-concurrency API (404): that one call is stubbed, the rest is moto."""
    d = deploy(versions=5, pc=2)
    ctx = d.context()
    real = ctx.lambda_client

    class Mixed:  # moto for everything but list_provisioned_concurrency_configs
        def __init__(self):
            import boto3

            self.stubbed = boto3.client("lambda", region_name="us-east-1")
            self.stubber = Stubber(self.stubbed)

        def __getattr__(self, name):
            return getattr(real, name)

        def get_paginator(self, name):
            return (self.stubbed if name == "list_provisioned_concurrency_configs" else real).get_paginator(name)

    mixed = Mixed()
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{d.function}"
    mixed.stubber.add_response(
        "list_provisioned_concurrency_configs",
        {"ProvisionedConcurrencyConfigs": [{"FunctionArn": f"{arn}:2"}, {"FunctionArn": f"{arn}:live"}]},
        {"FunctionName": d.function},
    )
    ctx.lambda_client = mixed
    with mixed.stubber:
        result = prune(ctx, keep=1)
    mixed.stubber.assert_no_pending_responses()
    assert result.reasons["2"] == "provisioned concurrency"
    assert result.deleted == ["3", "4"]
