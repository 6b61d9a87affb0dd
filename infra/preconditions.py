"""Facts about the account and the stack that `pulumi up` checks before it changes anything.

Each check fails with one line (a `PreconditionError`) that says what is wrong and what to do,
instead of a half-applied update that stops at the first resource AWS refuses.

- Names: AWS caps some names the program generates from the stack name (a Lambda function name,
  an IAM role name, an EventBridge rule name at 64 characters; an RDS identifier and an S3
  bucket at 63). The longest name is computed from the catalog, so a longer service or trigger
  list moves the limit with it.
- Concurrency: reserved concurrency (the catalog's `reserved_concurrency`, per slot function)
  and provisioned concurrency (stack config, per slot alias) come out of the account's Lambda
  concurrency, and AWS keeps at least 100 of it unreserved. New accounts start with 10, so any
  reservation fails there until a quota increase.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from infra.config import PROJECT, SLOTS, StackConfig, function_name
from services import catalog


class PreconditionError(RuntimeError):
    """The account or the stack cannot take this update; nothing has been changed."""


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------
# Pulumi auto-naming appends "-" and 7 random hex characters to the resource name
# (pulumi-terraform-bridge AutoName: Separator "-", Randlen 7).
AUTONAME_SUFFIX = len("-") + 7
# Limits from the AWS API references: Lambda CreateFunction FunctionName (name form, 64), IAM
# CreateRole RoleName (64), EventBridge PutRule Name (64), RDS CreateDBInstance
# DBInstanceIdentifier (63), RDS CreateDBProxy DBProxyName (63), S3 bucket naming rules (63).
FUNCTION_NAME_LIMIT = 64
ROLE_NAME_LIMIT = 64
RULE_NAME_LIMIT = 64
RDS_IDENTIFIER_LIMIT = 63
PROXY_NAME_LIMIT = 63
BUCKET_NAME_LIMIT = 63


@dataclass(frozen=True)
class GeneratedName:
    what: str
    name: str
    limit: int

    @property
    def excess(self) -> int:
        return len(self.name) - self.limit


def _autonamed(resource_name: str) -> str:
    return f"{resource_name}-{'x' * (AUTONAME_SUFFIX - 1)}"


def generated_names(config: StackConfig) -> list[GeneratedName]:
    """Every capped name the program gives AWS, at its longest (both slots of every service, so a
    later `pulumi up` that adds the idle slot cannot fail on a name either).

    The templates are the components' own: `{project}-{stack}` prefix; a slot's function and role
    share the resource name `{prefix}-{service}-{slot}` (infra/components/lambda_service.py); event
    rules are `{prefix}-events-{service}-{kind}-{index}` (infra/components/events.py). A test runs
    the program under the mocks and checks these against what it registers.
    """
    prefix = f"{PROJECT}-{config.stack}"
    names: list[GeneratedName] = []
    for fn in catalog.FUNCTIONS:
        slug = fn.name.replace("_", "-")
        for slot in SLOTS:
            function = function_name(config.stack, fn.name, slot)
            names.append(GeneratedName("Lambda function name", function, FUNCTION_NAME_LIMIT))
            names.append(GeneratedName("IAM role name", _autonamed(f"{prefix}-{slug}-{slot}"), ROLE_NAME_LIMIT))
        for index, trigger in enumerate(fn.triggers):
            if trigger.kind != "http":
                names.append(GeneratedName("EventBridge rule name",
                                           _autonamed(f"{prefix}-events-{slug}-{trigger.kind}-{index}"),
                                           RULE_NAME_LIMIT))
    names.append(GeneratedName("S3 bucket name", _autonamed(f"{prefix}-bucket"), BUCKET_NAME_LIMIT))
    # the web app's own bucket (infra/components/web.py, component "{prefix}-web")
    names.append(GeneratedName("S3 bucket name", _autonamed(f"{prefix}-web-bucket"), BUCKET_NAME_LIMIT))
    if config.database.mode == "rds":
        names.append(GeneratedName("RDS instance identifier", _autonamed(f"{prefix}-postgres"), RDS_IDENTIFIER_LIMIT))
        if config.database.proxy:
            names.append(GeneratedName("RDS proxy name", _autonamed(f"{prefix}-proxy"), PROXY_NAME_LIMIT))
            names.append(GeneratedName("IAM role name", _autonamed(f"{prefix}-proxy"), ROLE_NAME_LIMIT))
    return names


def check_names(config: StackConfig) -> None:
    names = generated_names(config)
    worst = max(names, key=lambda n: n.excess)
    if worst.excess > 0:
        longest_stack = len(config.stack) - max(n.excess for n in names)
        raise PreconditionError(
            f"stack name {config.stack!r} is too long: the {worst.what} {worst.name!r} would be "
            f"{len(worst.name)} characters and AWS allows {worst.limit}; use a stack name of at most "
            f"{longest_stack} characters"
        )


# --------------------------------------------------------------------------------------------
# Concurrency
# --------------------------------------------------------------------------------------------
# "You can reserve up to the Unreserved account concurrency value minus 100": the 100 are for
# functions without reserved concurrency (docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html);
# provisioned concurrency of a function without a reservation is held to the same floor
# (.../provisioned-concurrency.html).
MIN_UNRESERVED = 100


@dataclass(frozen=True)
class AccountConcurrency:
    """Lambda GetAccountSettings' AccountLimit, plus what this stack's own functions reserve now
    (an update gives those back before it takes them again)."""

    limit: int  # AccountLimit.ConcurrentExecutions
    unreserved: int  # AccountLimit.UnreservedConcurrentExecutions
    reserved_by_stack: int = 0  # reservations, and provisioned concurrency outside one


@dataclass(frozen=True)
class ConcurrencyAsk:
    reserved: int
    provisioned: int

    @property
    def total(self) -> int:
        return self.reserved + self.provisioned


def concurrency_asked(config: StackConfig) -> ConcurrencyAsk:
    """Reserved concurrency per slot function; provisioned concurrency per slot alias (every
    defined slot is kept warm). Provisioned concurrency inside a reservation takes nothing more."""
    reserved = provisioned = 0
    for service in config.services.values():
        fn, slots = service.function, len(service.slots)
        if fn.reserved_concurrency is not None:
            if service.provisioned_concurrency > fn.reserved_concurrency:
                raise PreconditionError(
                    f"collections:services.{service.name}.provisionedConcurrency: "
                    f"{service.provisioned_concurrency} is more than the function's reserved concurrency "
                    f"({fn.reserved_concurrency}, services/catalog.py), which Lambda refuses"
                )
            reserved += fn.reserved_concurrency * slots
        else:
            provisioned += service.provisioned_concurrency * slots
    return ConcurrencyAsk(reserved=reserved, provisioned=provisioned)


def check_concurrency(config: StackConfig, account: AccountConcurrency) -> None:
    asked = concurrency_asked(config)
    if asked.total == 0:
        return  # nothing reserved: any account runs the functions (throttled at its limit)
    available = account.unreserved + account.reserved_by_stack - MIN_UNRESERVED
    if asked.total > available:
        raise PreconditionError(
            f"the account's Lambda concurrency in {config.region} is {account.limit} "
            f"({account.unreserved} unreserved); this stack reserves {asked.reserved} and provisions "
            f"{asked.provisioned}, and AWS keeps {MIN_UNRESERVED} unreserved, so it needs at least "
            f"{asked.total + MIN_UNRESERVED - account.reserved_by_stack} unreserved: request a "
            f"'Concurrent executions' quota increase (Service Quotas, Lambda) or lower the reservations"
        )


def _provisioned(lambda_client: Any, name: str) -> int:
    """The provisioned concurrency a function's versions and aliases hold (ListProvisionedConcurrencyConfigs)."""
    held, marker = 0, None
    while True:
        page = lambda_client.list_provisioned_concurrency_configs(
            FunctionName=name, **({"Marker": marker} if marker else {}))
        held += sum(c["RequestedProvisionedConcurrentExecutions"] for c in page["ProvisionedConcurrencyConfigs"])
        marker = page.get("NextMarker")
        if not marker:
            return held


def read_account_concurrency(lambda_client: Any, function_names: Sequence[str]) -> AccountConcurrency:
    """GetAccountSettings, and what each of the stack's existing functions holds of the account now:
    its reservation (GetFunctionConcurrency), or without one its provisioned concurrency, which
    "counts towards a function's reserved concurrency and Regional quotas" (Lambda developer
    guide, provisioned concurrency), so a re-deploy does not count it twice."""
    limit = lambda_client.get_account_settings()["AccountLimit"]
    reserved = 0
    for name in function_names:
        try:
            answer = lambda_client.get_function_concurrency(FunctionName=name)
        except lambda_client.exceptions.ResourceNotFoundException:
            continue  # not created yet: it holds nothing
        own = answer.get("ReservedConcurrentExecutions")
        reserved += own if own is not None else _provisioned(lambda_client, name)
    return AccountConcurrency(limit=limit["ConcurrentExecutions"],
                              unreserved=limit["UnreservedConcurrentExecutions"], reserved_by_stack=reserved)


AccountReader = Callable[[StackConfig], AccountConcurrency]


def read_from_aws(config: StackConfig) -> AccountConcurrency:
    """Asked with boto3, as the AWS provider would: the stack's region and `aws:profile` if set."""
    import boto3
    import pulumi

    session = boto3.Session(profile_name=pulumi.Config("aws").get("profile"), region_name=config.region)
    names = [config.function_name(service, slot) for service in config.services for slot in SLOTS]
    return read_account_concurrency(session.client("lambda"), names)


_account_reader: AccountReader = read_from_aws


@contextmanager
def use_account_reader(reader: AccountReader) -> Iterator[None]:
    """Swap where the account's concurrency comes from (the mock runs have no AWS account)."""
    global _account_reader
    previous, _account_reader = _account_reader, reader
    try:
        yield
    finally:
        _account_reader = previous


def check(config: StackConfig) -> None:
    """All preconditions, cheapest first: names need no AWS call."""
    check_names(config)
    check_concurrency(config, _account_reader(config))
