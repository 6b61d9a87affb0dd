"""The connection budget is the database's real limit: the parameter group sets it, each stack's instance
class affords it (or the config is refused), and the RDS Proxy's pool leaves the reserved slots alone."""

from __future__ import annotations

import math

import pytest

from infra import connection_budget
from infra.config import ConfigError, parse
from infra.mocks import Resource, stack_config
from infra.plan import classify
from services import catalog

GROUP = "aws:rds/parameterGroup:ParameterGroup"
INSTANCE = "aws:rds/instance:Instance"
TARGET_GROUP = "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup"
BUDGET = catalog.DATABASE_MAX_CONNECTIONS


def config_of(stack: str, database: dict | None = None):
    raw = stack_config(stack, {"collections:database": database} if database else None)
    return parse(stack, "eu-west-1", {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("collections:")})


def resource(typ: str, inputs: dict) -> Resource:
    return Resource(urn=f"urn:pulumi:dev::collections::{typ}::x", type=typ, name="x", custom=True, inputs=inputs,
                    parent="")


def test_the_budget_is_below_what_a_1_gib_class_nominally_gives():
    """RDS's default on the nominal 1 GiB would be 112, but DBInstanceClassMemory is less than the nominal
    memory: the budget must not assume it (it did: 112 sized the model stages for a limit RDS never set)."""
    nominal = math.floor(2**30 / connection_budget.DEFAULT_BYTES_PER_CONNECTION)
    assert nominal == 112 and nominal > BUDGET
    assert BUDGET <= connection_budget.affordable_max_connections("db.t4g.micro") < nominal


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_s_instance_class_affords_the_budget(stack):
    config = config_of(stack)
    assert config.database.mode == "rds"
    connection_budget.check_instance_class(config.database.instance_class)  # raises otherwise


def test_an_unknown_instance_class_is_refused_not_guessed():
    with pytest.raises(ConfigError, match=r"database\.instanceClass: 'db\.x9z\.large'.*INSTANCE_MEMORY_GIB"):
        config_of("dev", {"instanceClass": "db.x9z.large"})
    # An external database has no instance class of ours: nothing to check.
    assert config_of("dev", {"mode": "external", "instanceClass": "db.x9z.large"}).database.mode == "external"


def test_a_class_too_small_for_the_limit_is_refused():
    affordable = connection_budget.affordable_max_connections("db.t4g.micro")
    connection_budget.check_instance_class("db.t4g.micro", affordable)
    with pytest.raises(connection_budget.UnaffordableConnections, match="affords about"):
        connection_budget.check_instance_class("db.t4g.micro", affordable + 1)
    assert connection_budget.affordable_max_connections("db.r7g.4xlarge") == 5000  # RDS's cap


def test_the_parameter_group_family_follows_the_engine_version():
    assert connection_budget.parameter_group_family("17") == "postgres17"
    assert connection_budget.parameter_group_family("18.1") == "postgres18"
    with pytest.raises(ValueError):
        connection_budget.parameter_group_family("latest")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_instance_uses_a_group_that_sets_max_connections_to_the_budget(program, stack):
    run = program(stack)
    (group,) = run.of_type(GROUP)
    assert group.inputs["family"] == f"postgres{config_of(stack).database.engine_version.split('.')[0]}"
    (parameter,) = group.inputs["parameters"]
    # Static: RDS accepts only pending-reboot for it.
    assert parameter == {"name": "max_connections", "value": str(BUDGET), "applyMethod": "pending-reboot"}
    (instance,) = run.of_type(INSTANCE)
    assert instance.inputs["parameterGroupName"].startswith(f"{group.name}-")  # the group's (mocked) physical name


def test_the_proxy_pool_leaves_rds_reserved_slots_and_operators_alone(program):
    (group,) = program("prod").of_type(TARGET_GROUP)
    pool = group.inputs["connectionPoolConfig"]
    percent, idle = pool["maxConnectionsPercent"], pool["maxIdleConnectionsPercent"]
    allowed = BUDGET - catalog.RDS_RESERVED_CONNECTIONS - catalog.OPERATOR_CONNECTIONS
    assert allowed == connection_budget.proxy_connection_limit()
    assert math.ceil(BUDGET * percent / 100) <= allowed  # even if RDS rounds the pool up
    assert math.ceil(BUDGET * (percent + 1) / 100) > allowed  # and no smaller than it need be
    assert 0 <= idle <= percent and percent < 100  # no longer the default 100: the whole of max_connections
    # Everything the functions may hold fits in the proxy's pool: cleanup, migrate, the model stages and
    # the image processor at their reservations (the API has the rest).
    reserved = sum((fn.reserved_concurrency or 0) * catalog.CONNECTIONS_PER_INSTANCE for fn in catalog.FUNCTIONS)
    assert reserved <= allowed
    assert program("dev").of_type(TARGET_GROUP) == []  # dev has no proxy


def test_the_proxy_percent_follows_other_budgets():
    for budget in (20, 80, 112, 450, 1000):
        percent = connection_budget.proxy_max_connections_percent(budget)
        assert 1 <= percent <= 100
        assert math.ceil(budget * percent / 100) <= connection_budget.proxy_connection_limit(budget)
    with pytest.raises(ValueError, match="no connections"):
        connection_budget.proxy_max_connections_percent(catalog.RDS_RESERVED_CONNECTIONS + catalog.OPERATOR_CONNECTIONS)


def test_changing_the_limit_or_the_pool_updates_in_place():
    """terraform-provider-aws rds/parameter_group.go: `parameter` updates (ModifyDBParameterGroup), `family`
    replaces; rds/proxy_default_target_group.go: `connection_pool_config` updates (ModifyDBProxyTargetGroup)."""
    def parameters(value: str) -> dict:
        return {"family": "postgres17", "parameters": [
            {"name": "max_connections", "value": value, "applyMethod": "pending-reboot"}]}

    assert classify(resource(GROUP, parameters("80")), resource(GROUP, parameters("90"))).action == "update"
    assert classify(resource(GROUP, parameters("80")),
                    resource(GROUP, {**parameters("80"), "family": "postgres18"})).action == "replace"
    pool = {"dbProxyName": "p", "connectionPoolConfig": {"maxConnectionsPercent": 100}}
    assert classify(resource(TARGET_GROUP, pool), resource(TARGET_GROUP, {
        **pool, "connectionPoolConfig": {"maxConnectionsPercent": 87, "maxIdleConnectionsPercent": 43}})).action \
        == "update"
    assert classify(resource(INSTANCE, {"parameterGroupName": "a"}),
                    resource(INSTANCE, {"parameterGroupName": "b"})).action == "update"
