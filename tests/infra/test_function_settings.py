"""The Pulumi program and the functions' settings agree: every variable a function requires on AWS is in
its environment, and the dashboard graphs the stage outcome metrics under the namespace the functions
are given."""

from __future__ import annotations

import json

import pytest

from services import catalog
from services.core.environment import required_variables
from services.core.observability import OUTCOME_METRICS
from services.core.settings import FUNCTION_SETTINGS

FUNCTION = "aws:lambda/function:Function"


def environments(run) -> dict[str, dict[str, str]]:
    return {r.inputs["name"]: r.inputs["environment"]["variables"] for r in run.of_type(FUNCTION)}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_function_is_given_each_variable_its_settings_require_on_aws(program, stack):
    run = program(stack)
    by_name = environments(run)
    for fn in catalog.FUNCTIONS:
        env = by_name[f"collections-{stack}-{fn.name.replace('_', '-')}-blue"]
        missing = [variable for variable in required_variables(fn.name) if not env.get(variable)]
        assert missing == [], f"{fn.name} ({FUNCTION_SETTINGS[fn.name].__name__}) would not start on AWS"


def test_the_dashboard_graphs_every_stage_outcome_in_the_functions_namespace(program):
    run = program("dev")
    namespaces = {env["COLLECTIONS_METRICS_NAMESPACE"] for env in environments(run).values()}
    assert namespaces == {"Collections/dev"}
    (dashboard,) = run.of_type("aws:cloudwatch/dashboard:Dashboard")
    widgets = json.loads(dashboard.inputs["dashboardBody"])["widgets"]
    searches = [m[0]["expression"] for w in widgets for m in w["properties"]["metrics"] if isinstance(m[0], dict)]
    assert sorted(searches) == sorted(
        f"SEARCH('{{\"Collections/dev\",service,stage}} MetricName=\"{name}\"', 'Sum', 300)"
        for name in OUTCOME_METRICS.values()
    )
