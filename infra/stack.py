"""Wires the components into the Collections stack and returns its outputs (the release contract).

Outputs (also `pulumi stack output --json`): api_url, app_url, bucket, event_bus, user_pool_id,
user_pool_client_id, dashboard_name, region, stack, release{steps, step_minutes, canary},
services{<catalog name>: {active_slot, alias_arn, alias_name, function_names, release_mode, canary,
provisioned_concurrency, alarm_names, triggers}}.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import artifacts, preconditions
from infra.components.auth import Auth, AuthArgs
from infra.components.database import Database, DatabaseArgs
from infra.components.events import EventRouting, EventRoutingArgs, PipelineBus, PipelineBusArgs
from infra.components.http_api import HttpApi, HttpApiArgs
from infra.components.image import ContainerImage, ContainerImageArgs
from infra.components.lambda_service import LambdaService, LambdaServiceArgs, SlotCode
from infra.components.monitoring import Monitoring, MonitoringArgs, metrics_namespace
from infra.components.network import Network, NetworkArgs
from infra.components.secrets import ApiKeys, ApiKeysArgs
from infra.components.storage import Storage, StorageArgs
from infra.components.web import WebApp, WebAppArgs
from infra.config import ALIAS_NAME, PROJECT, SLOTS, ConfigError, StackConfig, check_flips, check_package_moves, parse
from services import catalog
from services.core.ai import CATEGORIES
from services.core.migrations import migrations_hash
from services.core.settings import Settings


def _decode(raw: Any) -> Any:
    """Stack YAML scalars reach the program as strings; objects as JSON text."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def read_config() -> StackConfig:
    """Every `collections:*` key of the running stack, typed and validated (unknown keys refused)."""
    from pulumi.runtime.config import CONFIG, get_config_env

    raw = {**get_config_env(), **CONFIG.get()}
    prefix = f"{PROJECT}:"
    values = {key[len(prefix):]: _decode(value) for key, value in raw.items() if key.startswith(prefix)}
    return parse(pulumi.get_stack(), pulumi.Config("aws").get("region"), values)


def _secret(key: str, why: str) -> pulumi.Output[str]:
    value = pulumi.Config(PROJECT).get_secret(key)
    if value is None:
        raise ConfigError(f"{PROJECT}:{key}: not set ({why}); run `pulumi config set --secret {key} <value>`")
    return value


def previous_active_slots() -> dict[str, str]:
    """Each service's active slot as this stack's last update left it: its own `services` output
    (a stack may read its own outputs through a StackReference). Empty before the first update.

    Upstream facts this leans on: `pulumi up`/`preview` run on an existing stack, so the reference
    always resolves (a StackReference is a read, done in previews too); self-managed backends accept
    only the org `organization`, which is what `get_organization()` returns there; since March 2024
    (pulumi/pulumi#15754) a failed update keeps the previous outputs instead of wiping them. A missing
    entry is not taken as "nothing served": infra.config.check_flips fails closed on it.
    `_sync_await`: the check has to finish before the first resource is registered.
    """
    from pulumi.runtime.sync_await import _sync_await

    own = f"{pulumi.get_organization()}/{pulumi.get_project()}/{pulumi.get_stack()}"
    details = _sync_await(pulumi.StackReference("previous-update", stack_name=own).get_output_details("services"))
    services = details.value or details.secret_value or {}
    return {name: s["active_slot"] for name, s in services.items() if isinstance(s, dict) and s.get("active_slot")}


def deployed_packages(config: StackConfig, previous_active: dict[str, str] | None = None) -> dict[str, str]:
    """Package type ("zip"/"image") of each active (and previously active) slot's function as it runs
    on AWS now; for a service without a recorded previous slot, of every slot's function (any of
    them may be serving: infra.config.check_flips fails closed on them).

    Asked of AWS itself (not of a recorded value that could be stale): a function with an image
    URI is an image. Functions that do not exist yet are absent.
    """
    previous_active = previous_active or {}
    wanted = {config.function_name(s.name, s.active) for s in config.services.values()}
    for name in config.services:
        slots = (previous_active[name],) if name in previous_active else SLOTS
        wanted |= {config.function_name(name, slot) for slot in slots}
    existing = wanted & set(aws.lambda_.get_functions().function_names)
    return {
        name: "image" if aws.lambda_.get_function(function_name=name).image_uri else "zip"
        for name in sorted(existing)
    }


def build(config: StackConfig) -> dict[str, Any]:
    """The stack's resources and outputs. The web app's URL is known once its distribution exists, but
    the bucket's CORS and the Cognito client's callback take it earlier (there is no resource cycle):
    a deferred output, which must be resolved even when the program fails half-way, or every
    resource waiting on it would keep the run from ending."""
    # Before the first resource is registered, so a refusal changes nothing.
    preconditions.check(config)
    previous_active = previous_active_slots()
    deployed = deployed_packages(config, previous_active)
    check_package_moves(config, deployed)
    check_flips(config, previous_active, deployed)
    secrets = _read_secrets(config)  # a missing one fails here, before anything waits on the URL
    app_url, resolve = pulumi.deferred_output()
    resolved = False

    def resolve_app_url(url: pulumi.Output[str]) -> None:
        nonlocal resolved
        resolved = True
        resolve(url)

    try:
        return _build(config, secrets, app_url, resolve_app_url)
    except BaseException as error:
        if not resolved:
            resolve(pulumi.Output.from_input("").apply(_fail_with(error)))
        raise


def _fail_with(error: BaseException):
    def fail(_: Any) -> str:
        raise error  # what waits on the URL fails with the program's own error, which is what gets reported

    return fail


def _read_secrets(config: StackConfig) -> dict[str, pulumi.Output[str]]:
    secrets = {
        "anthropic": _secret("anthropicApiKey", "the analyzer calls Claude"),
        "voyage": _secret("voyageApiKey", "the embedder and search call Voyage AI"),
    }
    if config.database.mode == "rds":
        secrets["database_password"] = _secret("databasePassword", "database.mode is rds")
    else:
        secrets["database_url"] = _secret("databaseUrl", "database.mode is external")
    return secrets


def _build(config: StackConfig, secrets: dict[str, pulumi.Output[str]], app_url: pulumi.Output[str],
           resolve_app_url: Any) -> dict[str, Any]:
    prefix = f"{PROJECT}-{config.stack}"
    tags = {"project": PROJECT, "stack": config.stack}

    zones = aws.get_availability_zones(state="available").names
    network = Network(prefix, NetworkArgs(config=config.network, availability_zones=list(zones),
                                          region=config.region, tags=tags))
    storage = Storage(prefix, StorageArgs(
        cors_origins=app_url.apply(lambda url: [url, *config.api.cors_origins]),
        force_destroy=not config.deletion_protection, tags=tags))
    bus = PipelineBus(prefix, PipelineBusArgs(name=prefix, tags=tags))
    auth = Auth(prefix, AuthArgs(deletion_protection=config.deletion_protection, tags=tags,
                                 region=config.region, app_url=app_url))
    keys = ApiKeys(prefix, ApiKeysArgs(
        anthropic_api_key=secrets["anthropic"],
        voyage_api_key=secrets["voyage"],
        tags=tags,
    ))
    database = Database(prefix, DatabaseArgs(
        config=config.database,
        password=secrets.get("database_password"),
        url=secrets.get("database_url"),
        vpc_id=network.vpc.id,
        subnet_ids=network.private_subnet_ids,
        client_security_group_id=network.functions_security_group.id,
        deletion_protection=config.deletion_protection,
        tags=tags,
    ))
    secret_arns = {"database": database.secret.arn, **keys.arns}

    # Services the deploy invokes (migrate) come first: their invocation must exist before the
    # other services' aliases, which wait for it (new code takes traffic after the migrations).
    built: dict[str, LambdaService] = {}
    on_deploy: list[aws.lambda_.Invocation] = []
    for service in sorted(config.services.values(), key=lambda s: not s.function.invoke_on_deploy):
        environment = _environment(service.function, storage, bus, auth, secret_arns, metrics_namespace(config.stack))
        built[service.name] = LambdaService(f"{prefix}-{service.name.replace('_', '-')}", LambdaServiceArgs(
            stack=config,
            service=service,
            code=_slot_code(config, service.name, prefix, tags),
            environment=environment,
            bucket_arn=storage.bucket.arn,
            event_bus_arn=bus.bus.arn,
            secret_arns=secret_arns,
            subnet_ids=network.private_subnet_ids,
            security_group_ids=[network.functions_security_group.id],
            dead_letter_queue_arn=bus.dead_letter_queue.arn,
            tags=tags,
            alias_depends_on=tuple(on_deploy),
        ))
        if service.function.invoke_on_deploy:
            # It connects to the database and reaches AWS APIs through the NAT: `depends_on` on a
            # component does not reach its children, so the invocation names what it needs itself.
            on_deploy.append(_invoke_on_deploy(prefix, built[service.name],
                                               needs=[*database.ready, *network.egress]))
    services = {name: built[name] for name in config.services}  # catalog order

    api_service = _http_service(services)
    api_routes = tuple(r for t in api_service.function_spec.triggers_of("http") for r in t.routes)  # type: ignore[attr-defined]
    api = HttpApi(f"{prefix}-http", HttpApiArgs(
        service=api_service,
        routes=api_routes,
        config=config.api, user_pool_id=auth.user_pool.id, client_id=auth.client.id, region=config.region,
        log_retention_days=config.log_retention_days, tags=tags,
    ))
    web = WebApp(f"{prefix}-web", WebAppArgs(
        api_endpoint=api.url, api_routes=api_routes, storage_bucket=storage.bucket.bucket, region=config.region,
        auth_domain_url=auth.domain_url, client_id=auth.client.id,
        max_upload_bytes=Settings.model_fields["max_upload_bytes"].default, categories=CATEGORIES,
        force_destroy=not config.deletion_protection, tags=tags,
    ))
    resolve_app_url(web.url)
    events = EventRouting(f"{prefix}-events", EventRoutingArgs(services=services, bus=bus,
                                                               bucket_name=storage.bucket.bucket, tags=tags))
    monitoring = Monitoring(f"{prefix}-monitoring", MonitoringArgs(
        prefix=prefix, region=config.region, services=services, api_id=api.api.id,
        api_latency_p95_ms=config.api.latency_p95_ms, dead_letter_queue_name=bus.dead_letter_queue.name,
        alarm_email=config.alarm_email, tags=tags,
        # rules are keyed "{service-slug}-{kind}-{index}" (EventRouting)
        event_rules={name: [r for key, r in events.rules.items() if key.rsplit("-", 2)[0] == name.replace("_", "-")]
                     for name in services},
        database_instance_id=database.instance.identifier if database.instance is not None else None,
        database_proxy_name=database.proxy.name if database.proxy is not None else None,
        metrics_namespace=metrics_namespace(config.stack),
    ))
    return {
        "api_url": api.url,
        "app_url": web.url,
        "bucket": storage.bucket.bucket,
        "event_bus": bus.bus.name,
        "user_pool_id": auth.user_pool.id,
        "user_pool_client_id": auth.client.id,
        "dashboard_name": monitoring.dashboard_name,
        "region": config.region,
        "stack": config.stack,
        # The default strategy of `collections-release shift` for this stack's gradual services.
        "release": {"steps": list(config.release_steps), "step_minutes": config.release_step_minutes,
                    "canary": config.release_canary.as_output(max(s.service.timeout_s for s in services.values()))
                    if config.release_canary.enabled else None},
        "services": {
            name: {
                "active_slot": s.active_slot,
                "alias_arn": s.alias_arn,
                "alias_name": ALIAS_NAME,
                "function_names": s.function_names,
                "release_mode": s.service.release_mode,
                # how a shift judges this service's canary (false: by its alarms only)
                "canary": (s.service.release_canary.as_output(s.service.timeout_s)
                           if s.service.release_canary else False),
                "provisioned_concurrency": s.service.provisioned_concurrency,
                "alarm_names": monitoring.alarm_names[name],
                "triggers": [t.kind for t in s.function_spec.triggers],
            }
            for name, s in services.items()
        },
    }


# Settings (services/core/settings.py) read these: COLLECTIONS_ + the field name.
SECRET_VARIABLES = {
    "database": "COLLECTIONS_DATABASE_SECRET_ARN",
    "anthropic": "COLLECTIONS_ANTHROPIC_SECRET_ARN",
    "voyage": "COLLECTIONS_VOYAGE_SECRET_ARN",
}


def _environment(fn: catalog.Function, storage: Storage, bus: PipelineBus, auth: Auth,
                 secret_arns: Mapping[str, pulumi.Output[str]], namespace: str) -> dict[str, pulumi.Input[str]]:
    """A function's environment: the stack's resources and only the secrets the catalog gives it.

    Each function's settings class (services/core/settings.py FUNCTION_SETTINGS) refuses to start on
    Lambda without its `required_on_aws` variables; tests/infra/test_function_settings.py checks they
    are all here."""
    environment: dict[str, pulumi.Input[str]] = {
        "COLLECTIONS_BUCKET": storage.bucket.bucket,
        "COLLECTIONS_EVENT_BUS": bus.bus.name,
        "COLLECTIONS_METRICS_NAMESPACE": namespace,  # the dashboard reads the same (Monitoring)
        **{SECRET_VARIABLES[secret]: secret_arns[secret] for secret in fn.secrets},
    }
    if fn.triggers_of("http"):
        # API Gateway's JWT authorizer has verified the token; the api checks its claims and verifies it again.
        environment.update({
            "COLLECTIONS_AUTH_MODE": "apigateway",
            "COLLECTIONS_COGNITO_USER_POOL_ID": auth.user_pool.id,
            "COLLECTIONS_COGNITO_CLIENT_ID": auth.client.id,
        })
    return environment


def _http_service(services: Mapping[str, LambdaService]) -> LambdaService:
    found = [s for s in services.values() if s.function_spec.triggers_of("http")]
    if len(found) != 1:
        raise ValueError(f"the catalog must have exactly one HTTP function, found {len(found)}")
    return found[0]


def _slot_code(config: StackConfig, service: str, prefix: str, tags: Mapping[str, str]) -> dict[str, SlotCode]:
    """Build each package once per service: both slots of one package type run the same code."""
    fn = catalog.function(service)
    packages = {slot.package for slot in config.services[service].slots.values()}
    zip_artifact = artifacts.build_zip(fn) if "zip" in packages else None
    image_uri = None
    if "image" in packages:
        image = ContainerImage(f"{prefix}-{service.replace('_', '-')}", ContainerImageArgs(
            context=artifacts.image_context(fn),
            force_delete=not config.deletion_protection, tags=dict(tags), region=config.region))
        image_uri = image.image_uri
    return {
        slot: SlotCode(zip=zip_artifact) if cfg.package == "zip" else SlotCode(image_uri=image_uri)
        for slot, cfg in config.services[service].slots.items()
    }


def _invoke_on_deploy(prefix: str, service: LambdaService, needs: Sequence[pulumi.Resource]) -> aws.lambda_.Invocation:
    """Invoke a function such as `migrate` through its `live` alias on each deploy whose migrations changed."""
    digest = migrations_hash()
    active = service.slots[service.active_slot]
    return aws.lambda_.Invocation(
        f"{prefix}-{service.service.name.replace('_', '-')}-on-deploy",
        function_name=service.function_name,
        qualifier=ALIAS_NAME,
        input=json.dumps({"source": "collections.deploy", "migrations_hash": digest}),
        # Re-invoked only when this changes: a deploy without new migrations skips it.
        triggers={"migrations_hash": digest},
        opts=pulumi.ResourceOptions(depends_on=[active.alias, *needs]),
    )
