"""The stack's outputs (what `pulumi stack output --json` prints), typed.

Sources, first found wins: `--outputs FILE`, COLLECTIONS_STACK_OUTPUTS (JSON text or a path; CI
writes it after `pulumi up`), else the Pulumi CLI itself for `--stack`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipelines.canary import CanaryThresholds
from pipelines.errors import NotFound, ReleaseError

Slot = Literal["blue", "green"]
SLOTS: tuple[Slot, ...] = ("blue", "green")


class ServiceOutputs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = ""
    active_slot: Slot
    alias_arn: str
    alias_name: str = "live"
    function_names: dict[Slot, str]
    release_mode: Literal["direct", "gradual"] = "direct"
    provisioned_concurrency: int = Field(default=0, ge=0)
    alarm_names: list[str] = Field(default_factory=list)
    triggers: list[str] = Field(default_factory=list)
    # How a shift judges this service's canary: its own limits (the stack's merged with the service's
    # overrides); false: by its alarms only; absent or null (older outputs): the stack's `release.canary`.
    canary: CanaryThresholds | Literal[False] | None = None

    @property
    def function_name(self) -> str:
        """The active slot's function (the one consumers reach through its alias)."""
        return self.slot_function(self.active_slot)

    def slot_function(self, slot: str) -> str:
        try:
            return self.function_names[slot]  # type: ignore[index]
        except KeyError:
            defined = ", ".join(sorted(self.function_names)) or "none"
            raise NotFound(
                f"service {self.name!r} has no {slot!r} slot (defined: {defined}); add it to the stack "
                "config and run `pulumi up` first"
            ) from None

    @property
    def idle_slot(self) -> Slot:
        return "green" if self.active_slot == "blue" else "blue"


class ReleaseDefaults(BaseModel):
    """The stack's default release (config releaseSteps / releaseStepMinutes)."""

    model_config = ConfigDict(extra="ignore")

    steps: list[float] = Field(min_length=1)
    step_minutes: float = Field(ge=0)
    canary: CanaryThresholds | None = None  # config releaseCanary: how a shift judges the new version

    @property
    def strategy(self) -> str:
        """As a `--strategy` text: steps:P1,P2,...:MINUTES."""
        percents = ",".join(f"{w * 100:g}" for w in self.steps)
        return f"steps:{percents}:{self.step_minutes:g}"


class StackOutputs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    stack: str
    region: str = "us-east-1"
    api_url: str = ""
    bucket: str = ""
    event_bus: str = ""
    user_pool_id: str = ""
    user_pool_client_id: str = ""
    dashboard_name: str = ""
    release: ReleaseDefaults | None = None
    services: dict[str, ServiceOutputs]

    def model_post_init(self, __context: Any) -> None:
        for name, service in self.services.items():
            service.name = name

    def canary_for(self, service: ServiceOutputs) -> CanaryThresholds | None:
        """The limits a shift of `service` judges its canary by (None: alarms only)."""
        if service.canary is False:
            return None
        if service.canary is not None:
            return service.canary
        return self.release.canary if self.release else None

    def service(self, name: str) -> ServiceOutputs:
        """A service by its catalog name; `image-processor` and `image_processor` both work."""
        wanted = name.replace("-", "_")
        for key, service in self.services.items():
            if key.replace("-", "_") == wanted:
                return service
        known = ", ".join(sorted(self.services)) or "none"
        raise NotFound(f"unknown service {name!r} in stack {self.stack!r}; the stack has: {known}")

    def select(self, name: str | None) -> list[ServiceOutputs]:
        """One service, or all of them (name None or "all")."""
        if name in (None, "all"):
            return list(self.services.values())
        return [self.service(name)]


CONTRACT = 'an object {"stack": ..., "services": {...}} as `pulumi stack output --json` prints it'


def parse(text: str, origin: str) -> StackOutputs:
    return validate(_json(text, origin), origin)


def _json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ReleaseError(f"stack outputs from {origin} are not JSON: {error}") from None


def validate(data: Any, origin: str) -> StackOutputs:
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number",
                type(None): "null"}.get(type(data), type(data).__name__)
        raise ReleaseError(f"stack outputs from {origin} are JSON, but {kind} where {CONTRACT} is expected")
    try:
        return StackOutputs.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise ReleaseError(f"stack outputs from {origin} do not match the contract: {problems}") from None


def from_pulumi(stack: str, cwd: str | Path | None = None) -> StackOutputs:
    return parse(_pulumi_stack_output(stack, cwd), f"pulumi stack output --stack {stack}")


def _pulumi_stack_output(stack: str, cwd: str | Path | None = None) -> str:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ReleaseError(
            "no stack outputs: pass --outputs FILE, set COLLECTIONS_STACK_OUTPUTS, or install the Pulumi CLI "
            f"so that `pulumi stack output --json --stack {stack}` can be run"
        )
    result = subprocess.run(
        [pulumi, "stack", "output", "--json", "--stack", stack], cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"`pulumi stack output --stack {stack}` failed: {result.stderr.strip()}")
    return result.stdout


def _from_env(value: str) -> StackOutputs:
    """COLLECTIONS_STACK_OUTPUTS: JSON text, else the path of a JSON file."""
    origin = "COLLECTIONS_STACK_OUTPUTS"
    try:
        data = json.loads(value)
    except json.JSONDecodeError as error:
        path = Path(value)
        if path.is_file():
            return parse(path.read_text(), str(path))
        if value.lstrip()[:1] in ("{", "["):
            raise ReleaseError(f"{origin} is not valid JSON: {error}") from None
        raise ReleaseError(f"{origin}={value[:80]}: neither JSON nor an existing file") from None
    return validate(data, origin)


def load(outputs_file: str | None = None, stack: str | None = None, env_value: str | None = None) -> StackOutputs:
    if outputs_file:
        path = Path(outputs_file)
        if not path.is_file():
            raise ReleaseError(f"--outputs {outputs_file}: no such file")
        outputs = parse(path.read_text(), str(path))
    elif env_value:
        outputs = _from_env(env_value)
    elif stack:
        return from_pulumi(stack)
    else:
        raise ReleaseError("which stack? pass --stack S (with the Pulumi CLI), --outputs FILE, or set "
                           "COLLECTIONS_STACK_OUTPUTS")
    if stack and outputs.stack != stack.rsplit("/", 1)[-1]:  # "org/dev" names the stack "dev"
        raise ReleaseError(f"the outputs given are for stack {outputs.stack!r}, not {stack!r}")
    return outputs


def load_unless_new(outputs_file: str | None = None, stack: str | None = None) -> StackOutputs | None:
    """Like `load`, but None for a stack that has no outputs yet.

    `pulumi stack output --json` prints `{}` for a stack whose first `up` has not completed (Pulumi
    registers the program's outputs at the end of an update). Only exactly `{}` means that: any other
    document must match the contract, as in `load`.
    """
    if outputs_file:
        path = Path(outputs_file)
        if not path.is_file():
            raise ReleaseError(f"--outputs {outputs_file}: no such file")
        text, origin = path.read_text(), str(path)
    elif stack:
        text, origin = _pulumi_stack_output(stack), f"pulumi stack output --stack {stack}"
    else:
        raise ReleaseError("which stack? pass --stack S (with the Pulumi CLI) or --outputs FILE")
    data = _json(text, origin)
    if data == {}:
        return None
    outputs = validate(data, origin)
    if stack and outputs.stack != stack.rsplit("/", 1)[-1]:
        raise ReleaseError(f"the outputs given are for stack {outputs.stack!r}, not {stack!r}")
    return outputs
