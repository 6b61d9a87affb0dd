"""Typed stack configuration: every `collections:*` key of Pulumi.<stack>.yaml, validated.

Errors name the key's full path (``collections:services.api.slots.purple``) and what is allowed, so
a typo fails `pulumi preview` with a sentence instead of a half-built stack.

Secrets (API keys, the database password or URL) are not part of this model: they stay Pulumi
secrets (Outputs) end to end and are read by `secret_inputs` in infra/stack.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from infra import connection_budget
from services import catalog

PROJECT = "collections"
SLOTS: tuple[str, ...] = ("blue", "green")
PACKAGES: tuple[str, ...] = ("zip", "image")
RELEASE_MODES: tuple[str, ...] = ("direct", "gradual")
ALIAS_NAME = "live"

# Lambda's limits (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MEMORY_RANGE_MB = (128, 10_240)
TIMEOUT_RANGE_S = (1, catalog.LAMBDA_MAX_TIMEOUT_S)
# The only values CloudWatch Logs accepts for retention.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)

Slot = Literal["blue", "green"]
Package = Literal["zip", "image"]
ReleaseMode = Literal["direct", "gradual"]


class ConfigError(ValueError):
    """A stack configuration value is missing, unknown or out of range."""


def function_name(stack: str, service: str, slot: str) -> str:
    """The stable, explicit Lambda function name of one slot: `{project}-{stack}-{service}-{slot}`."""
    return f"{PROJECT}-{stack}-{service.replace('_', '-')}-{slot}"


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotConfig:
    package: Package = "zip"


@dataclass(frozen=True)
class ServiceConfig:
    name: str  # the catalog's function name, e.g. image_processor
    active: Slot
    slots: Mapping[str, SlotConfig]
    memory_mb: int
    timeout_s: int
    release_mode: ReleaseMode
    provisioned_concurrency: int = 0
    release_canary: CanaryConfig | None = None  # None: the shift does not judge this service's canary
    snap_start: bool = False  # Lambda SnapStart on published versions (see check_snap_start)

    @property
    def function(self) -> catalog.Function:
        return catalog.function(self.name)

    @property
    def idle_slots(self) -> tuple[str, ...]:
        return tuple(s for s in self.slots if s != self.active)


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str = "10.40.0.0/16"
    az_count: int = 2
    nat_per_az: bool = False  # prod: one NAT gateway per AZ; dev: one shared NAT

    @property
    def nat_gateways(self) -> int:
        return self.az_count if self.nat_per_az else 1


@dataclass(frozen=True)
class DatabaseConfig:
    mode: Literal["rds", "external"] = "rds"
    engine_version: str = "17"
    instance_class: str = "db.t4g.micro"
    allocated_storage_gb: int = 20
    max_allocated_storage_gb: int = 100
    multi_az: bool = False
    backup_retention_days: int = 1
    proxy: bool = False
    name: str = "collections"
    username: str = "collections"


@dataclass(frozen=True)
class ApiConfig:
    throttle_rate_limit: float = 50.0
    throttle_burst_limit: int = 100
    cors_origins: tuple[str, ...] = ("*",)
    latency_p95_ms: int = 500


@dataclass(frozen=True)
class CanaryConfig:
    """How `collections-release shift` judges the new version by its own metrics (config releaseCanary;
    exported in the stack output `release.canary`, read by pipelines/canary.py's CanaryThresholds)."""

    max_error_rate: float = 0.01
    max_p95_ms: int | None = None
    max_p99_ms: int | None = None
    min_invocations: int = 50
    on_insufficient_data: Literal["wait", "fail"] = "wait"
    max_wait_minutes: int = 60
    stable_ratio: float = 1.5
    enabled: bool = True  # a service may opt out (e.g. an hourly schedule never reaches minInvocations)
    metrics_delay_s: int | None = None  # None: the function's timeout + METRICS_DELAY_MARGIN_S

    def as_output(self, timeout_s: int) -> dict[str, Any]:
        """The limits as `collections-release` reads them, for a function with this timeout."""
        delay = self.metrics_delay_s if self.metrics_delay_s is not None else timeout_s + METRICS_DELAY_MARGIN_S
        return {"max_error_rate": self.max_error_rate, "max_p95_ms": self.max_p95_ms, "max_p99_ms": self.max_p99_ms,
                "min_invocations": self.min_invocations, "on_insufficient_data": self.on_insufficient_data,
                "max_wait_minutes": self.max_wait_minutes, "stable_ratio": self.stable_ratio,
                "metrics_delay_s": delay}


# Lambda stamps a metric with the time the function was invoked and sends metrics in 1-minute
# intervals ("Working with Lambda function metrics": with a 10-minute timeout, look more than 10 minutes
# in the past). So a minute's figures are complete at most timeout + one interval + publishing later.
METRICS_DELAY_MARGIN_S = 120


@dataclass(frozen=True)
class StackConfig:
    stack: str
    region: str
    release_mode: ReleaseMode
    release_steps: tuple[float, ...]
    release_step_minutes: int
    log_retention_days: int
    deletion_protection: bool
    alarm_email: str | None
    network: NetworkConfig
    database: DatabaseConfig
    api: ApiConfig
    services: Mapping[str, ServiceConfig] = field(default_factory=dict)
    project: str = PROJECT
    release_canary: CanaryConfig = field(default_factory=CanaryConfig)

    def function_name(self, service: str, slot: str) -> str:
        return function_name(self.stack, service, slot)


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
class _Section:
    """Reads one mapping of the config; every unread key is reported as unknown at `done()`."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {type(data).__name__} {data!r}")
        self.data, self.path, self.read = data, path, set()

    def key(self, name: str) -> str:
        separator = ":" if self.path == PROJECT else "."  # collections:services.api.active
        return f"{self.path}{separator}{name}"

    def get(self, name: str, kind: type | tuple[type, ...], default: Any) -> Any:
        self.read.add(name)
        value = self.data.get(name, default)
        if value is None:
            return default
        if kind in (int, float) and isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected {kind.__name__}, got {value!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.key(name)}: expected {expected}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not one of {', '.join(choices)}")
        return value

    def number(self, name: str, default: int, low: int, high: int, what: str = "") -> int:
        value = self.get(name, int, default)
        if not low <= value <= high:
            reason = f" ({what})" if what else ""
            raise ConfigError(f"{self.key(name)}: {value} is outside {low}–{high}{reason}")
        return value

    def section(self, name: str) -> _Section:
        self.read.add(name)
        return _Section(self.data.get(name), self.key(name))

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read))
            raise ConfigError(f"{self.key(unknown[0])}: unknown key (known keys here: {known})")


def _weight(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{path}: a traffic weight must be a number between 0 and 1, got {value!r}")
    return float(value)


def _service(name: str, data: Any, path: str, release_mode: str,
             release_canary: CanaryConfig | None = None) -> ServiceConfig:
    fn = catalog.function(name)
    section = _Section(data, path)
    slots_section = section.section("slots")
    if not slots_section.data:
        raise ConfigError(f"{slots_section.path}: define at least one slot ({' or '.join(SLOTS)})")
    slots: dict[str, SlotConfig] = {}
    for slot, slot_data in slots_section.data.items():
        slot_path = slots_section.key(slot)
        if slot not in SLOTS:
            raise ConfigError(f"{slot_path}: unknown slot {slot!r}; slots are {', '.join(SLOTS)}")
        slots_section.read.add(slot)
        slot_section = _Section(slot_data, slot_path)
        slots[slot] = SlotConfig(package=slot_section.choice("package", PACKAGES, "zip"))
        slot_section.done()
    active = section.choice("active", SLOTS, "blue")
    if active not in slots:
        raise ConfigError(
            f"{section.key('active')}: active slot {active!r} is not defined under {slots_section.path} "
            f"(defined: {', '.join(slots)})"
        )
    memory = section.number("memoryMb", fn.memory_mb, *MEMORY_RANGE_MB, what="Lambda memory in MB")
    timeout = section.number("timeoutS", fn.timeout_s, *TIMEOUT_RANGE_S, what="Lambda timeout in seconds")
    provisioned = section.number("provisionedConcurrency", 0, 0, 1000)
    snap_start = section.get("snapStart", bool, False)
    if fn.invoke_on_deploy:
        # The deploy invokes it through `live` right away (migrations before new code takes
        # traffic), so Pulumi must move its alias: it is always released directly.
        mode = section.choice("releaseMode", ("direct",), "direct")
    else:
        mode = section.choice("releaseMode", RELEASE_MODES, release_mode)
    canary = release_canary or CanaryConfig()
    if "releaseCanary" in section.data:  # this service's own limits over the stack's (or enabled: false)
        canary = _release_canary(section.section("releaseCanary"), canary)
    section.done()
    return ServiceConfig(
        name=name,
        active=active,  # type: ignore[arg-type]
        slots=slots,
        memory_mb=memory,
        timeout_s=timeout,
        release_mode=mode,  # type: ignore[arg-type]
        provisioned_concurrency=provisioned,
        release_canary=canary if canary.enabled else None,
        snap_start=check_snap_start(section.key("snapStart"), snap_start, provisioned, slots),
    )


def _release_canary(section: _Section, base: CanaryConfig | None = None) -> CanaryConfig:
    base = base or CanaryConfig()
    rate = section.get("maxErrorRate", float, base.max_error_rate)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"{section.key('maxErrorRate')}: a fraction between 0 and 1, got {rate!r}")
    ratio = section.get("stableRatio", float, base.stable_ratio)
    if ratio < 1.0:
        raise ConfigError(f"{section.key('stableRatio')}: at least 1 (the canary may be as bad as stable), got {ratio}")
    def latency(key: str, default: int | None) -> int | None:
        return section.number(key, 0, 1, 900_000) if section.data.get(key) is not None else default

    canary = CanaryConfig(
        max_error_rate=rate,
        max_p95_ms=latency("maxP95Ms", base.max_p95_ms),
        max_p99_ms=latency("maxP99Ms", base.max_p99_ms),
        min_invocations=section.number("minInvocations", base.min_invocations, 1, 10_000_000),
        on_insufficient_data=section.choice("onInsufficientData", ("wait", "fail"),  # type: ignore[arg-type]
                                            base.on_insufficient_data),
        max_wait_minutes=section.number("maxWaitMinutes", base.max_wait_minutes, 0, 1440),
        stable_ratio=ratio,
        enabled=section.get("enabled", bool, base.enabled),
        metrics_delay_s=section.number("metricsDelaySeconds", 0, 0, 3600)
        if section.data.get("metricsDelaySeconds") is not None else base.metrics_delay_s,
    )
    section.read.update({"maxP95Ms", "maxP99Ms", "metricsDelaySeconds"})
    section.done()
    return canary


def _release_steps(values: list, path: str) -> tuple[float, ...]:
    """Traffic weights the release tooling walks through in gradual mode (exported as the stack
    output `release`); ascending, each in 0–1, ending at 1 (all traffic on the new version)."""
    steps = tuple(_weight(v, f"{path}[{i}]") for i, v in enumerate(values))
    if not steps or steps[-1] != 1.0 or any(a >= b for a, b in zip(steps, steps[1:], strict=False)):
        raise ConfigError(f"{path}: weights must ascend and end at 1.0, got {list(values)!r}")
    return steps


_CIDR = re.compile(r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SECRET_KEYS = ("anthropicApiKey", "voyageApiKey", "databasePassword", "databaseUrl")


def parse(stack: str, region: str | None, values: Mapping[str, Any]) -> StackConfig:
    """Build the typed config from the `collections:*` values (namespace stripped, objects parsed)."""
    if not region:
        raise ConfigError("aws:region: not set; run `pulumi config set aws:region <region>`")
    top = _Section({k: v for k, v in values.items() if k not in SECRET_KEYS}, PROJECT)
    release_mode = top.choice("releaseMode", RELEASE_MODES, "direct")
    release_steps = _release_steps(top.get("releaseSteps", list, [0.1, 0.5, 1.0]), top.key("releaseSteps"))
    release_step_minutes = top.get("releaseStepMinutes", int, 5)
    if not 0 <= release_step_minutes <= 1440:
        raise ConfigError(f"collections:releaseStepMinutes: {release_step_minutes} is not between 0 and 1440 minutes")
    release_canary = _release_canary(top.section("releaseCanary"))
    retention = top.get("logRetentionDays", int, 14)
    if retention not in LOG_RETENTION_DAYS:
        raise ConfigError(
            f"collections:logRetentionDays: {retention} is not a CloudWatch retention "
            f"(one of {', '.join(map(str, LOG_RETENTION_DAYS))})"
        )
    alarm_email = top.get("alarmEmail", str, None)
    if alarm_email is not None and not _EMAIL.match(alarm_email):
        raise ConfigError(f"collections:alarmEmail: {alarm_email!r} is not an e-mail address")

    net = top.section("network")
    cidr = net.get("cidr", str, NetworkConfig.cidr)
    if not _CIDR.match(cidr):
        raise ConfigError(f"{net.key('cidr')}: {cidr!r} is not an IPv4 CIDR between /16 and /24")
    network = NetworkConfig(
        cidr=cidr,
        az_count=net.number("azCount", NetworkConfig.az_count, 2, 3, what="RDS needs two AZs"),
        nat_per_az=net.get("natPerAz", bool, NetworkConfig.nat_per_az),
    )
    net.done()

    db = top.section("database")
    engine_version = db.get("engineVersion", str, DatabaseConfig.engine_version)
    if not re.match(r"^1[7-9](\.\d+)?$", engine_version):
        raise ConfigError(f"{db.key('engineVersion')}: {engine_version!r}; use PostgreSQL 17 or later (17, 17.x)")
    database = DatabaseConfig(
        mode=db.choice("mode", ("rds", "external"), DatabaseConfig.mode),  # type: ignore[arg-type]
        engine_version=engine_version,
        instance_class=db.get("instanceClass", str, DatabaseConfig.instance_class),
        allocated_storage_gb=db.number("allocatedStorageGb", DatabaseConfig.allocated_storage_gb, 20, 65_536),
        max_allocated_storage_gb=db.number(
            "maxAllocatedStorageGb", DatabaseConfig.max_allocated_storage_gb, 20, 65_536
        ),
        multi_az=db.get("multiAz", bool, DatabaseConfig.multi_az),
        backup_retention_days=db.number("backupRetentionDays", DatabaseConfig.backup_retention_days, 0, 35),
        proxy=db.get("proxy", bool, DatabaseConfig.proxy),
    )
    db.done()
    if database.max_allocated_storage_gb < database.allocated_storage_gb:
        raise ConfigError("collections:database.maxAllocatedStorageGb: must be ≥ allocatedStorageGb")
    if database.mode == "rds":
        # The program sets max_connections to the catalog's budget: the class must afford it (fail closed).
        try:
            connection_budget.check_instance_class(database.instance_class)
        except connection_budget.UnaffordableConnections as error:
            raise ConfigError(f"{db.key('instanceClass')}: {error}") from None

    api_section = top.section("api")
    origins = api_section.get("corsOrigins", list, list(ApiConfig.cors_origins))
    if not origins or not all(isinstance(o, str) and o for o in origins):
        raise ConfigError(f"{api_section.key('corsOrigins')}: a non-empty list of origins, got {origins!r}")
    api = ApiConfig(
        throttle_rate_limit=api_section.get("throttleRateLimit", float, ApiConfig.throttle_rate_limit),
        throttle_burst_limit=api_section.number("throttleBurstLimit", ApiConfig.throttle_burst_limit, 1, 100_000),
        cors_origins=tuple(origins),
        latency_p95_ms=api_section.number("latencyP95Ms", ApiConfig.latency_p95_ms, 10, 30_000),
    )
    api_section.done()

    services_section = top.section("services")
    services: dict[str, ServiceConfig] = {}
    for name, data in services_section.data.items():
        path = services_section.key(name)
        if name not in catalog.FUNCTIONS_BY_NAME:
            known = ", ".join(sorted(catalog.FUNCTIONS_BY_NAME))
            raise ConfigError(f"{path}: unknown service {name!r}; the catalog has: {known}")
        services_section.read.add(name)
        services[name] = _service(name, data, path, release_mode, release_canary)
    # A catalog function the stack file does not mention still gets deployed: one blue zip slot.
    for fn in catalog.FUNCTIONS:
        if fn.name not in services:
            services[fn.name] = _service(fn.name, {"slots": {"blue": {}}}, services_section.key(fn.name),
                                         release_mode, release_canary)
    services = {fn.name: services[fn.name] for fn in catalog.FUNCTIONS}  # catalog order

    config = StackConfig(
        stack=stack,
        region=region,
        release_mode=release_mode,  # type: ignore[arg-type]
        release_steps=release_steps,
        release_step_minutes=release_step_minutes,
        log_retention_days=retention,
        deletion_protection=top.get("deletionProtection", bool, False),
        alarm_email=alarm_email,
        network=network,
        database=database,
        api=api,
        services=services,
        release_canary=release_canary,
    )
    top.done()
    return config


# Lambda SnapStart, as AWS documents it (docs.aws.amazon.com/lambda/latest/dg/snapstart.html,
# "Supported features and limitations"): Python 3.12 and later managed runtimes (also Java 11+,
# .NET 8+), zip packages only (not OS-only runtimes or container images), published versions
# only, and not together with provisioned concurrency, EFS, or ephemeral storage over 512 MB.
SNAP_START_MIN_PYTHON = (3, 12)


def supports_snap_start(runtime: str) -> bool:
    """Fail closed: a runtime we cannot read as `pythonX.Y` is not one SnapStart supports."""
    match = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    return bool(match) and (int(match[1]), int(match[2])) >= SNAP_START_MIN_PYTHON


def check_snap_start(path: str, wanted: bool, provisioned: int, slots: Mapping[str, SlotConfig]) -> bool:
    """`snapStart: true` is valid for zip slots on a runtime that supports it, never with
    provisioned concurrency (AWS refuses the pair; pick one per service and stack)."""
    if not wanted:
        return False
    from infra.artifacts import LAMBDA_PYTHON  # the runtime's Python; lambda_service uses the same

    runtime = f"python{LAMBDA_PYTHON}"
    if not supports_snap_start(runtime):
        raise ConfigError(f"{path}: SnapStart needs Python 3.12 or later; the functions run {runtime}")
    if provisioned:
        raise ConfigError(
            f"{path}: SnapStart and provisionedConcurrency ({provisioned}) cannot be combined on one "
            "function; keep one of them"
        )
    images = [slot for slot, config in slots.items() if config.package == "image"]
    if images:
        raise ConfigError(
            f"{path}: SnapStart works on zip packages only; slot {', '.join(images)} is a container image "
            "(set snapStart: false before adding an image slot)"
        )
    return True


def check_package_moves(config: StackConfig, deployed: Mapping[str, str]) -> None:
    """Refuse to change the package type of a service's active slot.

    `deployed` maps function name → package type ("zip"/"image") of what runs on AWS now (read
    with aws.lambda_.get_function at program run; see infra/stack.py). AWS replaces a function
    whose package type changes, and with an explicit name that is delete-then-create: consumers
    of the active alias would see errors. Idle slots may change freely.
    """
    for service in config.services.values():
        name = config.function_name(service.name, service.active)
        before = deployed.get(name)
        wanted = service.slots[service.active].package
        if before is not None and before != wanted:
            idle = "green" if service.active == "blue" else "blue"
            raise ConfigError(
                f"collections:services.{service.name}.slots.{service.active}.package: the active slot "
                f"{service.active!r} runs as {before!r}; changing it to {wanted!r} in place would replace "
                f"the function consumers use. Move in two steps: (1) define the idle slot "
                f"`{idle}` with `package: {wanted}` and `pulumi up`; (2) set "
                f"`collections:services.{service.name}.active: {idle}` and `pulumi up`. "
                f"Roll back by setting `active` back to {service.active!r}."
            )


def check_flips(config: StackConfig, previous_active: Mapping[str, str], deployed: Mapping[str, str]) -> None:
    """Refuse one `pulumi up` that flips `active` and also converts or removes the slot that served.

    `previous_active` maps service → the active slot of the last update (the stack's own
    `services.<name>.active_slot` output); `deployed` maps function name → package type as AWS
    runs it now. The consumers (API Gateway integration, EventBridge targets) keep calling the
    previously active slot until their own update lands in the same up; converting that slot
    replaces its function (delete first: the name is explicit) and removing it deletes it, so
    either breaks traffic and the rollback path. Two ups do it safely.

    Fails closed: a service the last update recorded no active slot for (outputs lost or never
    written, e.g. a failed first up) while AWS already runs one of its slot functions may not
    convert or remove any existing idle slot in this up, since that slot may be the one serving.
    `deployed` must then hold every slot function of that service (infra/stack.py asks AWS for them).
    """
    for service in config.services.values():
        before = previous_active.get(service.name)
        key = f"collections:services.{service.name}"
        if before is None:
            _check_unknown_previous_slot(config, service, deployed)
            continue
        if before == service.active:
            continue
        flip = f"(1) set `{key}.active: {service.active}` with slot `{before}` unchanged and `pulumi up`"
        if before not in service.slots:
            raise ConfigError(
                f"{key}.slots.{before}: this up flips `active` from {before!r} to {service.active!r} and removes "
                f"slot {before!r}, which serves until the flip lands. Two steps: {flip}; (2) remove "
                f"`{key}.slots.{before}` and `pulumi up`.")
        was = deployed.get(config.function_name(service.name, before))
        wanted = service.slots[before].package
        if was is not None and was != wanted:
            raise ConfigError(
                f"{key}.slots.{before}.package: this up flips `active` from {before!r} to {service.active!r} and "
                f"converts slot {before!r} from {was!r} to {wanted!r}, which replaces the function still serving "
                f"until the flip lands. Two steps: {flip}; (2) set `{key}.slots.{before}.package: {wanted}` and "
                f"`pulumi up`.")


def _check_unknown_previous_slot(config: StackConfig, service: ServiceConfig, deployed: Mapping[str, str]) -> None:
    """Without a recorded active slot, any idle slot that runs on AWS may be the one serving."""
    key = f"collections:services.{service.name}"
    for slot in SLOTS:
        was = deployed.get(config.function_name(service.name, slot))
        if slot == service.active or was is None:
            continue
        wanted = service.slots[slot].package if slot in service.slots else None
        if wanted == was:
            continue
        change = f"removes slot {slot!r}" if wanted is None else f"converts slot {slot!r} from {was!r} to {wanted!r}"
        raise ConfigError(
            f"{key}.slots.{slot}: this up {change}, whose function runs on AWS, but the stack's last update "
            f"recorded no active slot for {service.name!r} (stack output `services.{service.name}.active_slot`), "
            f"so it may be the slot serving. Run `pulumi up` once with slot `{slot}` unchanged (it records the "
            f"active slot), then repeat this change.")
