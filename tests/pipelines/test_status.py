"""status shows what moto holds."""

from __future__ import annotations

import json

from pipelines.cli import main
from pipelines.shift import Shift
from pipelines.status import service_status
from pipelines.strategies import parse


def test_status_reports_alias_versions_alarms_and_lock(deploy):
    d = deploy(versions=3, alarms=2)
    Shift(d.context(), parse("all-at-once"), to="2").run()
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="2",
                                 RoutingConfig={"AdditionalVersionWeights": {"3": 0.25}})
    d.set_alarm("ALARM", index=1)
    d.context(lock_owner="bob@ci").lock().acquire("shift api to v3", target="3")
    row = service_status(d.context())
    assert row["alias_version"] == "2" and row["weights"] == {"3": 0.25}
    assert row["routing"] == "v2 75%, v3 25%"
    assert row["newest_version"] == "3" and row["stable"] == "2" and row["previous"] == "1"
    assert row["alarms"] == [{"name": d.alarms[0], "state": "OK"}, {"name": d.alarms[1], "state": "ALARM"}]
    assert row["lock"]["owner"] == "bob@ci"
    assert row["provisioned_concurrency"]["status"] == "none"


def test_status_command_prints_json_and_table(deploy, tmp_path, capsys):
    d = deploy(versions=2)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(d.outputs.model_dump_json())
    assert main(["status", "--outputs", str(outputs), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stack"] == d.stack
    assert data["services"][0]["function"] == d.function and data["services"][0]["alias_version"] == "1"
    assert main(["status", "--outputs", str(outputs), "--service", "api"]) == 0
    table = capsys.readouterr().out
    assert "v1 100%" in table and d.alarms[0] + "=OK" in table


def test_status_of_all_services_reports_a_missing_alias_and_goes_on(deploy, tmp_path, capsys):
    d = deploy(versions=1)
    broken = d.outputs.model_dump()
    broken["services"]["cleanup"] = {**broken["services"]["api"], "function_names": {"blue": "collections-x-gone"}}
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(broken))
    assert main(["status", "--outputs", str(outputs)]) == 0
    table = capsys.readouterr().out
    assert "v1 100%" in table and "ERROR:" in table and "collections-x-gone" in table
    assert main(["status", "--outputs", str(outputs), "--service", "cleanup"]) == 4
