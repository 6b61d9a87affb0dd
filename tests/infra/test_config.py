"""Typed stack config: both stack files parse; every bad value fails with its key path and the rule."""

from __future__ import annotations

import re

import pytest

from infra import config
from infra.config import ConfigError, check_flips, check_package_moves, parse
from infra.mocks import stack_config
from services import catalog
from tests.infra.conftest import SERVICES, slots


def values_of(stack: str) -> dict:
    raw = stack_config(stack)
    return {k.split(":", 1)[1]: v for k, v in raw.items() if k.startswith("collections:")}


def test_both_stack_files_parse_with_every_catalog_service():
    for stack in ("dev", "prod"):
        parsed = parse(stack, "eu-west-1", values_of(stack))
        assert list(parsed.services) == [f.name for f in catalog.FUNCTIONS]


def test_prod_and_dev_differ_where_the_issue_says():
    dev, prod = (parse(s, "eu-west-1", values_of(s)) for s in ("dev", "prod"))
    assert (dev.release_mode, prod.release_mode) == ("direct", "gradual")
    assert dev.services["api"].provisioned_concurrency == 0 < prod.services["api"].provisioned_concurrency
    assert (dev.network.nat_gateways, prod.network.nat_gateways) == (1, prod.network.az_count)
    assert prod.network.az_count == 3
    assert (dev.deletion_protection, prod.deletion_protection) == (False, True)


def test_service_defaults_come_from_the_catalog():
    parsed = parse("dev", "eu-west-1", {})
    for fn in catalog.FUNCTIONS:
        service = parsed.services[fn.name]
        assert (service.memory_mb, service.timeout_s, service.active) == (fn.memory_mb, fn.timeout_s, "blue")
        assert dict(service.slots) == {"blue": config.SlotConfig("zip")}


def test_function_names_follow_the_contract():
    assert config.function_name("dev", "image_processor", "blue") == "collections-dev-image-processor-blue"


BAD = [
    ({"services": {"thumbnailer": {}}}, "collections:services.thumbnailer: unknown service 'thumbnailer'"),
    ({"services": {"api": {"slots": {"purple": {}}}}}, "collections:services.api.slots.purple: unknown slot"),
    ({"services": {"api": {"active": "green", "slots": {"blue": {}}}}},
     "collections:services.api.active: active slot 'green' is not defined"),
    ({"services": {"api": {"active": "red", "slots": {"blue": {}}}}},
     "collections:services.api.active: 'red' is not one of blue, green"),
    ({"services": {"api": {"slots": {}}}}, "collections:services.api.slots: define at least one slot"),
    ({"services": {"api": {"slots": {"blue": {"package": "docker"}}}}},
     "collections:services.api.slots.blue.package: 'docker' is not one of zip, image"),
    ({"services": {"api": {"slots": {"blue": {}}, "memoryMb": 64}}},
     "collections:services.api.memoryMb: 64 is outside 128–10240"),
    ({"services": {"api": {"slots": {"blue": {}}, "memoryMb": 20_000}}},
     "collections:services.api.memoryMb: 20000 is outside 128–10240"),
    ({"services": {"cleanup": {"slots": {"blue": {}}, "timeoutS": 901}}},
     "collections:services.cleanup.timeoutS: 901 is outside 1–900"),
    ({"services": {"api": {"slots": {"blue": {}}, "timeoutS": "fast"}}},
     "collections:services.api.timeoutS: expected int, got str 'fast'"),
    ({"services": {"api": {"slots": {"blue": {}}, "provisionedConcurrency": -1}}},
     "collections:services.api.provisionedConcurrency: -1 is outside"),
    ({"services": {"api": {"slots": {"blue": {}}, "colour": "blue"}}},
     "collections:services.api.colour: unknown key"),
    ({"releaseSteps": [0.1, 1.5]}, "collections:releaseSteps[1]: a traffic weight must be a number between 0 and 1"),
    ({"releaseSteps": [-0.2, 1.0]}, "collections:releaseSteps[0]: a traffic weight must be a number between 0 and 1"),
    ({"releaseSteps": [0.5, 0.2, 1.0]}, "collections:releaseSteps: weights must ascend and end at 1.0"),
    ({"releaseStepMinutes": 2000}, "collections:releaseStepMinutes: 2000 is not between 0 and 1440 minutes"),
    ({"releaseMode": "canary"}, "collections:releaseMode: 'canary' is not one of direct, gradual"),
    ({"logRetentionDays": 10}, "collections:logRetentionDays: 10 is not a CloudWatch retention"),
    ({"network": {"azCount": 1}}, "collections:network.azCount: 1 is outside 2–3"),
    ({"network": {"cidr": "10.0.0.0/8"}}, "collections:network.cidr: '10.0.0.0/8' is not an IPv4 CIDR"),
    ({"database": {"engineVersion": "16.4"}}, "collections:database.engineVersion: '16.4'; use PostgreSQL 17"),
    ({"database": {"mode": "aurora"}}, "collections:database.mode: 'aurora' is not one of rds, external"),
    ({"alarmEmail": "not-an-address"}, "collections:alarmEmail: 'not-an-address' is not an e-mail address"),
    ({"deletionProtection": "yes"}, "collections:deletionProtection: expected bool, got str 'yes'"),
    ({"servicez": {}}, "collections:servicez: unknown key"),
    ({"services": {"migrate": {"slots": {"blue": {}}, "releaseMode": "gradual"}}},
     "collections:services.migrate.releaseMode: 'gradual' is not one of direct"),
]


@pytest.mark.parametrize(("values", "message"), BAD, ids=[m.split(":")[1].split(" ")[0] for _, m in BAD])
def test_bad_config_names_its_path(values, message):
    with pytest.raises(ConfigError) as error:
        parse("dev", "eu-west-1", values)
    assert message in str(error.value)


def test_missing_region_is_refused():
    with pytest.raises(ConfigError, match="aws:region: not set"):
        parse("dev", None, {})


def test_changing_the_active_slots_package_names_the_two_step_move():
    wanted = parse("dev", "eu-west-1", {"services": {"api": {"slots": {"blue": {"package": "image"}}}}})
    with pytest.raises(ConfigError) as error:
        check_package_moves(wanted, {"collections-dev-api-blue": "zip"})
    message = str(error.value)
    assert message.startswith("collections:services.api.slots.blue.package: the active slot 'blue' runs as 'zip'")
    assert "(1) define the idle slot `green` with `package: image`" in message
    assert "(2) set `collections:services.api.active: green`" in message


def test_idle_slot_package_changes_and_first_deploys_are_allowed():
    two_slots = parse("dev", "eu-west-1", {"services": {"api": {"slots": {"blue": {}, "green": {"package": "image"}}}}})
    check_package_moves(two_slots, {"collections-dev-api-blue": "zip", "collections-dev-api-green": "zip"})
    check_package_moves(two_slots, {})  # nothing deployed yet


def test_flipping_to_a_slot_whose_package_differs_from_what_runs_is_refused():
    # green was deployed as zip; making it active *and* image in one go replaces the new active function.
    wanted = parse("dev", "eu-west-1",
                   {"services": {"api": {"active": "green", "slots": {"blue": {}, "green": {"package": "image"}}}}})
    with pytest.raises(ConfigError, match="the active slot 'green' runs as 'zip'"):
        check_package_moves(wanted, {"collections-dev-api-blue": "zip", "collections-dev-api-green": "zip"})


# -- the same rules, through the program under the mocks -------------------------------------------
def test_program_refuses_the_active_package_change_against_what_aws_runs(program):
    with pytest.raises(ConfigError, match="Move in two steps"):
        program("dev", slots("api", blue="image"), deployed={"collections-dev-api-blue": "zip"})


def test_program_reports_bad_stack_config_with_its_path(program):
    with pytest.raises(ConfigError, match="collections:services.api.slots.purple: unknown slot"):
        program("dev", {SERVICES: {"api": {"slots": {"purple": {}}}}})


def test_program_names_a_missing_secret(program):
    with pytest.raises(ConfigError, match="collections:anthropicApiKey: not set .*pulumi config set --secret"):
        program("dev", {"collections:anthropicApiKey": None})


def test_external_database_needs_its_url(program):
    with pytest.raises(ConfigError, match="collections:databaseUrl: not set"):
        program("dev", {"collections:database": {"mode": "external"}})


# -- flips: the slot that served until this up must outlive it --------------------------------------
DEPLOYED_BOTH = {"collections-dev-api-blue": "zip", "collections-dev-api-green": "image"}


def _api(active: str, **packages: str | None):
    slots_ = {slot: ({"package": package} if package else None) for slot, package in packages.items()}
    return parse("dev", "eu-west-1", {"services": {"api": {"active": active, "slots": slots_}}})


def test_a_flip_with_both_slots_unchanged_passes():
    check_flips(_api("green", blue="zip", green="image"), {"api": "blue"}, DEPLOYED_BOTH)


def test_a_flip_that_converts_the_previous_slot_is_refused_with_the_two_steps():
    with pytest.raises(ConfigError) as error:
        check_flips(_api("green", blue="image", green="image"), {"api": "blue"}, DEPLOYED_BOTH)
    message = str(error.value)
    assert message.startswith("collections:services.api.slots.blue.package: this up flips `active` from 'blue'")
    assert "(1) set `collections:services.api.active: green` with slot `blue` unchanged" in message
    assert "(2) set `collections:services.api.slots.blue.package: image`" in message
    assert "\n" not in message


def test_a_flip_that_removes_the_previous_slot_is_refused_with_the_two_steps():
    green_only = parse("dev", "eu-west-1", {"services": {"api": {"active": "green",
                                                                 "slots": {"green": {"package": "image"}}}}})
    with pytest.raises(ConfigError, match=r"^collections:services.api.slots.blue: this up flips .* removes slot 'blue'"
                                          r".*\(2\) remove `collections:services.api.slots.blue`"):
        check_flips(green_only, {"api": "blue"}, DEPLOYED_BOTH)


def test_converting_or_removing_the_idle_slot_without_a_flip_passes():
    check_flips(_api("green", blue="image", green="image"), {"api": "green"}, DEPLOYED_BOTH)
    green_only = parse("dev", "eu-west-1", {"services": {"api": {"active": "green",
                                                                 "slots": {"green": {"package": "image"}}}}})
    check_flips(green_only, {"api": "green"}, DEPLOYED_BOTH)


def test_before_the_first_update_nothing_is_deployed_and_nothing_is_refused():
    check_flips(_api("green", blue="image", green="image"), {}, {})
    # …and a previous slot not deployed (any more) cannot be converted.
    check_flips(_api("green", blue="image", green="image"), {"api": "blue"}, {})


@pytest.mark.parametrize("change, config_, expected", [
    ("convert", lambda: _api("green", blue="image", green="image"), "converts slot 'blue' from 'zip' to 'image'"),
    ("remove", lambda: parse("dev", "eu-west-1", {"services": {"api": {"active": "green",
                                                                       "slots": {"green": {"package": "image"}}}}}),
     "removes slot 'blue'"),
])
def test_without_a_recorded_active_slot_a_deployed_idle_slot_may_be_serving_and_is_refused(change, config_, expected):
    """Fail closed: the stack's last outputs lost (or never written) while both slots run on AWS."""
    with pytest.raises(ConfigError) as error:
        check_flips(config_(), {}, DEPLOYED_BOTH)
    message = str(error.value)
    assert message.startswith(f"collections:services.api.slots.blue: this up {expected}, whose function runs on AWS")
    assert "recorded no active slot for 'api'" in message
    assert "Run `pulumi up` once with slot `blue` unchanged" in message
    assert "\n" not in message


def test_without_a_recorded_active_slot_leaving_the_slots_as_they_run_passes():
    check_flips(_api("green", blue="zip", green="image"), {}, DEPLOYED_BOTH)  # a flip alone breaks nothing
    check_flips(_api("blue", blue="zip", green="image"), {}, DEPLOYED_BOTH)


def test_the_program_asks_aws_for_every_slot_when_no_active_slot_was_recorded(program):
    """No `previous` run: the stack has no outputs, yet AWS runs both api slots; converting blue is refused."""
    with pytest.raises(ConfigError, match=r"slots.blue: this up converts slot 'blue' .* recorded no active slot"):
        program("dev", {"collections:services": {"api": {"active": "green", "snapStart": False, "slots": {
            "blue": {"package": "image"}, "green": {"package": "image"}}}}}, deployed=DEPLOYED_BOTH)


# --- SnapStart ------------------------------------------------------------------------------------
def test_snap_start_is_valid_on_zip_slots_of_a_supporting_runtime():
    parsed = parse("dev", "eu-west-1", {"services": {"embedder": {"snapStart": True, "slots": {"blue": {}}}}})
    assert parsed.services["embedder"].snap_start is True
    assert parsed.services["analyzer"].snap_start is False  # off unless asked for


def test_each_stack_picks_snap_start_or_provisioned_concurrency_for_the_api():
    dev, prod = (parse(s, "eu-west-1", values_of(s)).services["api"] for s in ("dev", "prod"))
    assert (dev.snap_start, dev.provisioned_concurrency) == (True, 0)
    assert (prod.snap_start, prod.provisioned_concurrency > 0) == (False, True)


@pytest.mark.parametrize(
    "service, message",
    [
        ({"snapStart": True, "provisionedConcurrency": 2, "slots": {"blue": {}}},
         "collections:services.api.snapStart: SnapStart and provisionedConcurrency (2) cannot be combined"),
        ({"snapStart": True, "slots": {"blue": {}, "green": {"package": "image"}}},
         "collections:services.api.snapStart: SnapStart works on zip packages only; slot green is a container"),
        ({"snapStart": "yes", "slots": {"blue": {}}}, "collections:services.api.snapStart"),
    ],
)
def test_snap_start_conflicts_are_named(service, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse("dev", "eu-west-1", {"services": {"api": service}})


@pytest.mark.parametrize(
    "runtime, supported",
    [("python3.12", True), ("python3.13", True), ("python3.11", False), ("python3.9", False),
     ("nodejs22.x", False), ("python3", False), ("provided.al2023", False)],
)
def test_snap_start_runtimes_fail_closed(runtime, supported):
    assert config.supports_snap_start(runtime) is supported


def test_snap_start_on_an_older_runtime_is_refused(monkeypatch):
    from infra import artifacts

    monkeypatch.setattr(artifacts, "LAMBDA_PYTHON", "3.11")
    with pytest.raises(ConfigError, match=r"SnapStart needs Python 3.12 or later; the functions run python3.11"):
        parse("dev", "eu-west-1", {"services": {"api": {"snapStart": True, "slots": {"blue": {}}}}})
