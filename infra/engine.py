"""The Pulumi engine this program needs, checked before anything is registered.

The program sets `replace_with` (a slot's alias and configs go with its function) and
`deleted_with`. The Python SDK only learns at registration time that an engine lacks them, and
then fails with a traceback per resource. The engine reports what it supports
(`GetDeploymentInfo`, which the SDK loads into `monitor_features` before the program runs), so the
program asks once at start and stops with one line naming the CLI to install.

`replace_with` arrived in pulumi 3.207.0 (pulumi/pulumi#20693; the 3.206.0 SDK has no
`replace_with`, 3.207.0 has it): pyproject.toml's floor and the workflows' `pulumi-version` pin
say the same.
"""

from __future__ import annotations

import pulumi
from pulumi.runtime.proto import resource_pb2
from pulumi.runtime.settings import monitor_supports_feature

MIN_PULUMI_VERSION = "3.207.0"
REQUIRED_FEATURES = {
    resource_pb2.RESOURCE_MONITOR_FEATURE_REPLACE_WITH: "replace_with",
    resource_pb2.RESOURCE_MONITOR_FEATURE_DELETED_WITH: "deleted_with",
}


def require_engine_features() -> None:
    """Stop with one line if the running engine lacks an option the program uses."""
    missing = [name for feature, name in REQUIRED_FEATURES.items() if not monitor_supports_feature(feature)]
    if missing:
        # RunError: Pulumi prints the message alone, without a traceback.
        raise pulumi.RunError(
            f"This Pulumi CLI does not support {', '.join(missing)}: install Pulumi {MIN_PULUMI_VERSION} or newer "
            f"(curl -fsSL https://get.pulumi.com | sh -s -- --version {MIN_PULUMI_VERSION})")
