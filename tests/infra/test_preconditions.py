"""Preconditions checked before anything changes: each fails with one line, and each has a pass case."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from infra import preconditions
from infra.config import parse
from infra.mocks import stack_config
from infra.preconditions import AccountConcurrency, PreconditionError
from services import catalog
from tests.infra.conftest import SERVICES

FUNCTION = "aws:lambda/function:Function"


def config_of(stack: str, name: str | None = None, overrides: dict | None = None):
    raw = stack_config(stack, overrides)
    values = {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("collections:")}
    return parse(name or stack, "eu-west-1", values)


def both_slots_everywhere() -> dict:
    return {SERVICES: {fn.name: {"active": "blue", "slots": {"blue": {"package": "zip"}, "green": {"package": "zip"}}}
                       for fn in catalog.FUNCTIONS}}


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_committed_stack_names_fit(stack):
    preconditions.check_names(config_of(stack))


def test_the_longest_stack_name_that_fits_passes_and_one_more_character_fails():
    base = config_of("prod")
    longest = max(preconditions.generated_names(base), key=lambda n: n.excess)
    fits = len(base.stack) - longest.excess
    preconditions.check_names(config_of("prod", "s" * fits))
    with pytest.raises(PreconditionError) as refused:
        preconditions.check_names(config_of("prod", "s" * (fits + 1)))
    message = str(refused.value)
    assert "\n" not in message
    assert f"use a stack name of at most {fits} characters" in message
    assert "AWS allows 64" in message


def test_the_limit_follows_the_catalog():
    """The longest name today is an EventBridge rule of image_processor's event trigger: a
    longer service name would lower the limit, with no constant to update."""
    names = preconditions.generated_names(config_of("prod"))
    worst = max(names, key=lambda n: n.excess)
    assert worst.what == "EventBridge rule name"
    assert "image-processor-event-1" in worst.name


def test_generated_names_match_what_the_program_registers(program):
    """The templates in infra/preconditions.py are checked against the program's own resources:
    explicit names as given, auto-named ones as the resource name plus Pulumi's suffix."""
    run = program("prod", both_slots_everywhere())
    config = config_of("prod", overrides=both_slots_everywhere())
    predicted = {(n.what, n.name) for n in preconditions.generated_names(config)}
    suffix = "-" + "x" * (preconditions.AUTONAME_SUFFIX - 1)
    registered = {("Lambda function name", r.inputs["name"]) for r in run.of_type(FUNCTION)}
    for typ, what in (("aws:iam/role:Role", "IAM role name"), ("aws:cloudwatch/eventRule:EventRule",
                      "EventBridge rule name"), ("aws:s3/bucket:Bucket", "S3 bucket name"),
                      ("aws:rds/instance:Instance", "RDS instance identifier"),
                      ("aws:rds/proxy:Proxy", "RDS proxy name")):
        registered |= {(what, r.name + suffix) for r in run.of_type(typ)}
    assert predicted == registered


# ---------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------
def test_what_each_stack_asks_for():
    dev, prod = config_of("dev"), config_of("prod")
    reserved = sum(fn.reserved_concurrency or 0 for fn in catalog.FUNCTIONS)
    assert preconditions.concurrency_asked(dev) == preconditions.ConcurrencyAsk(reserved=reserved, provisioned=0)
    assert preconditions.concurrency_asked(prod) == preconditions.ConcurrencyAsk(
        reserved=reserved, provisioned=prod.services["api"].provisioned_concurrency)


def test_a_new_account_with_10_is_refused_in_one_line():
    with pytest.raises(PreconditionError) as refused:
        preconditions.check_concurrency(config_of("dev"), AccountConcurrency(limit=10, unreserved=10))
    message = str(refused.value)
    assert "\n" not in message
    assert "is 10 (10 unreserved)" in message and "quota increase" in message


def test_the_floor_of_100_unreserved_is_kept():
    prod = config_of("prod")
    asked = preconditions.concurrency_asked(prod).total
    preconditions.check_concurrency(prod, AccountConcurrency(limit=1000, unreserved=100 + asked))
    with pytest.raises(PreconditionError, match=f"needs at least {100 + asked} unreserved"):
        preconditions.check_concurrency(prod, AccountConcurrency(limit=1000, unreserved=99 + asked))


def test_reservations_the_stack_already_holds_count_as_available():
    """An update gives the stack's own reservations back before taking them again."""
    dev = config_of("dev")
    asked = preconditions.concurrency_asked(dev).total
    preconditions.check_concurrency(dev, AccountConcurrency(limit=100 + asked, unreserved=100, reserved_by_stack=asked))


def test_no_reservation_needs_no_headroom():
    config = config_of("dev")
    free = config.__class__(**{**config.__dict__, "services": {
        name: service for name, service in config.services.items() if service.function.reserved_concurrency is None}})
    preconditions.check_concurrency(free, AccountConcurrency(limit=10, unreserved=10))


def test_provisioned_beyond_a_reservation_is_refused():
    config = config_of("dev", overrides={SERVICES: {"cleanup": {"provisionedConcurrency": 2}}})
    with pytest.raises(PreconditionError, match="cleanup.provisionedConcurrency: 2 is more than"):
        preconditions.concurrency_asked(config)


def test_the_account_is_read_with_get_account_settings_and_function_concurrency():
    client = boto3.client("lambda", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("get_account_settings", {
        "AccountLimit": {"ConcurrentExecutions": 1000, "UnreservedConcurrentExecutions": 998,
                         "TotalCodeSize": 1, "CodeSizeUnzipped": 1, "CodeSizeZipped": 1},
        "AccountUsage": {"TotalCodeSize": 1, "FunctionCount": 2}})
    stub.add_response("get_function_concurrency", {"ReservedConcurrentExecutions": 2},
                      {"FunctionName": "collections-dev-cleanup-blue"})
    stub.add_client_error("get_function_concurrency", "ResourceNotFoundException", http_status_code=404,
                          expected_params={"FunctionName": "collections-dev-cleanup-green"})
    stub.add_response("get_function_concurrency", {}, {"FunctionName": "collections-dev-api-blue"})
    # No reservation: its aliases' provisioned concurrency comes out of the unreserved pool, and is
    # what the stack gives back before it provisions again (paged with NextMarker).
    stub.add_response("list_provisioned_concurrency_configs", {
        "ProvisionedConcurrencyConfigs": [{"FunctionArn": "arn:aws:lambda:eu-west-1:1:function:f:live",
                                           "RequestedProvisionedConcurrentExecutions": 3}],
        "NextMarker": "m"}, {"FunctionName": "collections-dev-api-blue"})
    stub.add_response("list_provisioned_concurrency_configs", {
        "ProvisionedConcurrencyConfigs": [{"FunctionArn": "arn:aws:lambda:eu-west-1:1:function:f:old",
                                           "RequestedProvisionedConcurrentExecutions": 1}]},
        {"FunctionName": "collections-dev-api-blue", "Marker": "m"})
    with stub:
        account = preconditions.read_account_concurrency(client, [
            "collections-dev-cleanup-blue", "collections-dev-cleanup-green", "collections-dev-api-blue"])
    stub.assert_no_pending_responses()
    assert account == AccountConcurrency(limit=1000, unreserved=998, reserved_by_stack=2 + 3 + 1)


def test_the_program_checks_the_account_before_anything_else(program, monkeypatch):
    from infra.mocks import RecordingMonitor

    registered = []
    original = RecordingMonitor.RegisterResource

    def record(self, request):
        registered.append(request.type)
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", record)
    with pytest.raises(PreconditionError, match="account's Lambda concurrency in eu-west-1 is 10"):
        program("dev", account=AccountConcurrency(limit=10, unreserved=10))
    assert registered in ([], ["pulumi:pulumi:Stack"])  # the root stack only: no AWS resource
