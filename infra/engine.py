"""The Pulumi engine and SDK this program needs, checked before anything is registered.

The program sets `replace_with` (a slot's alias and configs go with its function) and
`deleted_with`. An older engine does not silently ignore them: the Python SDK refuses at each
registration ("The Pulumi CLI does not support the ReplaceWith option", pulumi/runtime/resource.py,
`monitor_supports_feature(RESOURCE_MONITOR_FEATURE_REPLACE_WITH)`), one traceback per resource. The
engine reports what it supports (`GetDeploymentInfo`, or the per-feature `SupportsFeature("replaceWith")`
probe on older engines; pulumi/runtime/settings.py `_load_monitor_feature_support`, which runs before
the program), so the program asks once at start and stops with one line naming the CLI to install.
An SDK older than the option has no `replace_with` argument at all: that is checked first.

`replace_with` arrived in pulumi 3.207.0 (pulumi/pulumi#20693; the 3.206.0 SDK has no
`replace_with`, 3.207.0 has it): pyproject.toml's floor and the workflows' `pulumi-version` pin
say the same.
"""

from __future__ import annotations

import re
from importlib.metadata import version

import pulumi
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import monitor_supports_feature

MIN_PULUMI_VERSION = "3.207.0"
REQUIRED_FEATURES = {
    "RESOURCE_MONITOR_FEATURE_REPLACE_WITH": "replace_with",
    "RESOURCE_MONITOR_FEATURE_DELETED_WITH": "deleted_with",
}


def _release(text: str) -> tuple[int, ...]:
    """(3, 207, 0) from "3.207.0" (or "3.207.0a1+dev"): the release part only."""
    match = re.match(r"(\d+)\.(\d+)\.(\d+)", text)
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.groups())


def sdk_version() -> str:
    return version("pulumi")


def require_engine_features() -> None:
    """Stop with one line if the installed SDK or the running engine lacks an option the program uses."""
    installed = sdk_version()
    if _release(installed) < _release(MIN_PULUMI_VERSION):
        raise pulumi.RunError(
            f"The Pulumi Python SDK {installed} has no replace_with: install pulumi>={MIN_PULUMI_VERSION} "
            f"(pip install -e '.[infra]') and Pulumi CLI {MIN_PULUMI_VERSION} or newer")
    # getattr: the feature ids exist only in SDKs that know the options (checked above).
    missing = [name for feature, name in REQUIRED_FEATURES.items()
               if not monitor_supports_feature(getattr(resource_pb2, feature))]
    if missing:
        # RunError: Pulumi prints the message alone, without a traceback.
        raise pulumi.RunError(
            f"This Pulumi CLI does not support {', '.join(missing)}: install Pulumi {MIN_PULUMI_VERSION} or newer "
            f"(curl -fsSL https://get.pulumi.com | sh -s -- --version {MIN_PULUMI_VERSION})")
