"""The mocks publish a Lambda version exactly when terraform-provider-aws would
(internal/service/lambda/function.go: needsFunctionCodeUpdate / needsFunctionConfigUpdate)."""

from __future__ import annotations

import pytest

from infra.mocks import PublishedFunction, UnmodelledInput, published_version

BASE = {
    "name": "collections-dev-api-blue", "packageType": "Zip", "publish": True, "description": "api",
    "memorySize": 512, "code": {"path": "/build/api-abc.zip"}, "sourceCodeHash": "abc", "handler": "h.handler",
    "runtime": "python3.12", "reservedConcurrentExecutions": 5, "tags": {"stack": "dev"},
}
V3 = PublishedFunction(BASE, "3")


def test_a_new_function_with_publish_is_version_1():
    assert published_version(None, BASE) == "1"
    assert published_version(None, {**BASE, "publish": False}) == "$LATEST"


def test_a_description_change_publishes():
    assert published_version(V3, {**BASE, "description": "the api"}) == "4"


def test_a_reserved_concurrency_change_does_not_publish():
    assert published_version(V3, {**BASE, "reservedConcurrentExecutions": 10}) == "3"


def test_tags_do_not_publish_code_and_configuration_do():
    assert published_version(V3, {**BASE, "tags": {"stack": "dev", "x": "y"}}) == "3"
    assert published_version(V3, {**BASE, "code": {"path": "/build/api-def.zip"}, "sourceCodeHash": "def"}) == "4"
    assert published_version(V3, {**BASE, "memorySize": 1024}) == "4"
    assert published_version(V3, BASE) == "3"  # nothing changed


def test_turning_publish_on_publishes_and_off_does_not():
    latest = PublishedFunction({**BASE, "publish": False}, "$LATEST")
    assert published_version(latest, BASE) == "1"
    assert published_version(V3, {**BASE, "publish": False, "memorySize": 1024}) == "3"


def test_a_replacement_starts_again_at_version_1():
    assert published_version(V3, {**BASE, "packageType": "Image", "imageUri": "r@sha256:1"}) == "1"


def test_an_input_the_mocks_do_not_model_is_an_error():
    with pytest.raises(UnmodelledInput, match="useResourceTimeoutForPropagation"):
        published_version(V3, {**BASE, "useResourceTimeoutForPropagation": True})
    with pytest.raises(UnmodelledInput):  # also on create: the table must know every input the program sets
        published_version(None, {**BASE, "someFutureInput": 1})


def test_a_configuration_change_through_the_program_publishes_the_next_version(program):
    first = program("dev")
    second = program("dev", {"collections:services": {"api": {"memoryMb": 1536}}}, previous=first)
    assert first.functions["collections-dev-api-blue"].version == "1"
    assert second.functions["collections-dev-api-blue"].version == "2"
    assert second.functions["collections-dev-embedder-blue"].version == "1"  # untouched
    alias = second.one("aws:lambda/alias:Alias", "collections-dev-api-blue")
    assert alias.inputs["functionVersion"] == "2"


def test_the_publish_tables_name_inputs_the_sdk_has():
    """A misspelled input would never match a change and so never publish: every name must be a real
    aws.lambda_.Function input (the bridge's camelCase of the Terraform argument)."""
    import inspect

    import pulumi_aws

    from infra.mocks import (
        _FUNCTION_IDENTITY_INPUTS,
        NON_PUBLISHING_INPUTS,
        PUBLISHING_CODE_INPUTS,
        PUBLISHING_CONFIG_INPUTS,
    )

    def camel(snake: str) -> str:
        head, *rest = snake.split("_")
        return head + "".join(part[:1].upper() + part[1:] for part in rest)

    parameters = inspect.signature(pulumi_aws.lambda_.Function._internal_init).parameters
    sdk = {camel(p) for p in parameters if p not in ("__self__", "resource_name", "opts", "__props__")}
    modelled = PUBLISHING_CODE_INPUTS | PUBLISHING_CONFIG_INPUTS | NON_PUBLISHING_INPUTS | _FUNCTION_IDENTITY_INPUTS
    assert modelled <= sdk, sorted(modelled - sdk)
    tables = [PUBLISHING_CODE_INPUTS, PUBLISHING_CONFIG_INPUTS, NON_PUBLISHING_INPUTS, _FUNCTION_IDENTITY_INPUTS]
    assert sum(map(len, tables)) == len(modelled)  # each input in exactly one table
    assert "description" in PUBLISHING_CONFIG_INPUTS and "reservedConcurrentExecutions" in NON_PUBLISHING_INPUTS
