"""One catalog function as blue/green slots, each published behind its own `live` alias.

A slot is a function with a stable explicit name `{project}-{stack}-{service}-{slot}` and
`publish=True`: new code publishes a new version. Moving `live` to it is a release: done here
in `direct` mode, left to the release tooling in `gradual` mode (`ignore_changes` on the alias's
version and weights, so `pulumi up` never undoes a traffic shift in progress). Consumers are
wired by other components to the *active* slot's alias only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra import iam
from infra.artifacts import LAMBDA_PYTHON, ZipArtifact
from infra.config import ALIAS_NAME, ServiceConfig, StackConfig
from services import catalog

LAMBDA_RUNTIME = f"python{LAMBDA_PYTHON}"  # the Python the locks were resolved for and the bytecode compiled with
# Asynchronous invocations (EventBridge, schedules) that keep failing end up in the DLQ.
ASYNC_RETRY_ATTEMPTS = 2
# The maximum event age lives in the catalog: cleanup's pending timeout is derived from it.
ASYNC_MAX_EVENT_AGE_S = catalog.ASYNC_MAX_EVENT_AGE_S


@dataclass
class SlotCode:
    """What one slot runs: a zip archive, or an image pinned by digest."""

    zip: ZipArtifact | None = None
    image_uri: pulumi.Input[str] | None = None


@dataclass
class LambdaServiceArgs:
    stack: StackConfig
    service: ServiceConfig
    code: Mapping[str, SlotCode]  # per slot
    environment: Mapping[str, pulumi.Input[str]]
    bucket_arn: pulumi.Input[str]
    event_bus_arn: pulumi.Input[str]
    secret_arns: Mapping[str, pulumi.Input[str]]
    subnet_ids: list[pulumi.Input[str]]
    security_group_ids: list[pulumi.Input[str]]
    dead_letter_queue_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # What each slot's `live` alias waits for (e.g. the deploy's migrations): passed to the alias
    # itself, because `depends_on` on this component does not reach its children.
    alias_depends_on: Sequence[pulumi.Resource] = ()


@dataclass
class SlotResources:
    name: str
    function: aws.lambda_.Function
    alias: aws.lambda_.Alias
    log_group: aws.cloudwatch.LogGroup
    role: aws.iam.Role


class LambdaService(pulumi.ComponentResource):
    def __init__(self, name: str, args: LambdaServiceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("collections:lambda:LambdaService", name, None, opts)
        self.service = args.service
        self.function_spec: catalog.Function = args.service.function
        self.slots: dict[str, SlotResources] = {
            slot: self._slot(name, slot, args) for slot in args.service.slots
        }
        active = self.slots[args.service.active]
        self.active_slot = args.service.active
        self.alias_arn: pulumi.Output[str] = active.alias.arn
        self.invoke_arn: pulumi.Output[str] = active.alias.invoke_arn
        self.function_name: pulumi.Output[str] = active.function.name
        self.function_names: dict[str, str] = {
            slot: args.stack.function_name(args.service.name, slot) for slot in args.service.slots
        }
        self.register_outputs({
            "active_slot": self.active_slot,
            "alias_arn": self.alias_arn,
            "invoke_arn": self.invoke_arn,
            "function_name": self.function_name,
        })

    def _slot(self, name: str, slot: str, args: LambdaServiceArgs) -> SlotResources:
        child = pulumi.ResourceOptions(parent=self)
        fn, service = self.function_spec, args.service
        function_name = args.stack.function_name(service.name, slot)
        prefix = f"{name}-{slot}"
        # Created before the function so Lambda never auto-creates it without a retention.
        log_group = aws.cloudwatch.LogGroup(
            prefix, name=f"/aws/lambda/{function_name}", retention_in_days=args.stack.log_retention_days,
            tags=args.tags, opts=child,
        )
        role = aws.iam.Role(prefix, assume_role_policy=iam.assume_role_policy(), tags=args.tags, opts=child)
        secret_names = list(fn.secrets)
        policy = pulumi.Output.all(
            args.bucket_arn, args.event_bus_arn, log_group.arn, args.dead_letter_queue_arn,
            *[args.secret_arns[s] for s in secret_names],
        ).apply(lambda values: iam.function_policy(
            fn,
            bucket_arn=values[0],
            event_bus_arn=values[1],
            log_group_arn=values[2],
            dead_letter_queue_arn=values[3] if self._is_async(fn) else None,
            secret_arns=dict(zip(secret_names, values[4:], strict=True)),
        ))
        role_policy = aws.iam.RolePolicy(prefix, role=role.id, policy=policy, opts=child)

        code = args.code[slot]
        package = service.slots[slot].package
        if package == "zip":
            if code.zip is None:
                raise ValueError(f"{function_name}: a zip slot needs a zip artifact")
            package_args = dict(
                package_type="Zip",
                code=pulumi.FileArchive(str(code.zip.path)),
                source_code_hash=code.zip.source_code_hash,
                handler=fn.handler,
                runtime=LAMBDA_RUNTIME,
                # Each published version is snapshotted after init; aliases point at versions already.
                snap_start=aws.lambda_.FunctionSnapStartArgs(apply_on="PublishedVersions")
                if service.snap_start else None,
            )
        else:
            if code.image_uri is None:
                raise ValueError(f"{function_name}: an image slot needs an image URI")
            package_args = dict(package_type="Image", image_uri=code.image_uri)

        function = aws.lambda_.Function(
            prefix,
            name=function_name,
            description=fn.description,
            role=role.arn,
            architectures=[fn.architecture],
            memory_size=service.memory_mb,
            timeout=service.timeout_s,
            publish=True,
            reserved_concurrent_executions=fn.reserved_concurrency,
            environment=aws.lambda_.FunctionEnvironmentArgs(variables={
                **args.environment, "POWERTOOLS_SERVICE_NAME": service.name, **fn.extra,
            }),
            logging_config=aws.lambda_.FunctionLoggingConfigArgs(log_format="JSON", log_group=log_group.name),
            vpc_config=aws.lambda_.FunctionVpcConfigArgs(
                subnet_ids=args.subnet_ids, security_group_ids=args.security_group_ids,
            ),
            tags={**args.tags, "collections:service": service.name, "collections:slot": slot},
            **package_args,
            # The explicit name cannot exist twice, so a replacement (only ever of an idle slot's
            # package type: config validation refuses it on the active slot) deletes first.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[log_group, role_policy],
                                        delete_before_replace=True),
        )
        gradual = service.release_mode == "gradual"
        # Lambda deletes a function's alias and configs with it: replace them with the function
        # (an idle slot changing package type) and skip their own delete when it goes.
        tied = pulumi.ResourceOptions(parent=self, replace_with=[function], deleted_with=function)
        alias = aws.lambda_.Alias(
            prefix,
            name=ALIAS_NAME,
            function_name=function.name,
            function_version=function.version,
            description=f"{service.name} {slot}: the version consumers call",
            # Gradual: Pulumi creates the alias; collections-release moves it (and its weights).
            opts=pulumi.ResourceOptions.merge(tied, pulumi.ResourceOptions(
                ignore_changes=["function_version", "routing_config"] if gradual else None,
                depends_on=list(args.alias_depends_on) or None,
            )),
        )
        if service.provisioned_concurrency:
            # On every defined slot, not only the active one: the idle slot must be warm before
            # the flip moves traffic to it, and a rollback lands on warm instances too.
            aws.lambda_.ProvisionedConcurrencyConfig(
                prefix, function_name=function.name, qualifier=alias.name,
                provisioned_concurrent_executions=service.provisioned_concurrency, opts=tied,
            )
        if self._is_async(fn) and args.dead_letter_queue_arn is not None:
            aws.lambda_.FunctionEventInvokeConfig(
                prefix, function_name=function.name, qualifier=alias.name,
                maximum_retry_attempts=ASYNC_RETRY_ATTEMPTS, maximum_event_age_in_seconds=ASYNC_MAX_EVENT_AGE_S,
                destination_config=aws.lambda_.FunctionEventInvokeConfigDestinationConfigArgs(
                    on_failure=aws.lambda_.FunctionEventInvokeConfigDestinationConfigOnFailureArgs(
                        destination=args.dead_letter_queue_arn),
                ),
                opts=tied,
            )
        return SlotResources(name=slot, function=function, alias=alias, log_group=log_group, role=role)

    @staticmethod
    def _is_async(fn: catalog.Function) -> bool:
        """Invoked asynchronously by EventBridge (events, S3 notifications, schedules)."""
        return any(t.kind in ("s3", "event", "schedule") for t in fn.triggers)
