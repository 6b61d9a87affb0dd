"""Traffic shifts on moto: every strategy to completion, alarm rollback, resume, locks."""

from __future__ import annotations

import pytest

from pipelines.errors import Interrupted, LockHeld, NotFound, ReleaseError, RolledBack
from pipelines.shift import AliasChanged, Shift
from pipelines.strategies import parse

STRATEGIES = {
    "all-at-once": [],
    "canary:10:5": [{"1": 0.9, "3": 0.1}],
    "linear:25:2": [{"3": 0.25}, {"3": 0.5}, {"3": 0.75}],
    "steps:5,25,50,100:3": [{"3": 0.05}, {"3": 0.25}, {"3": 0.5}],
}


def _watch(deployed):
    """Record the alias's weights at every (fake) wait."""
    seen: list[dict] = []

    def hook(_clock):
        weights = deployed.alias()["weights"]
        if weights and weights not in seen:
            seen.append(weights)

    deployed.clock.hooks.append(hook)
    return seen


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_each_strategy_runs_to_completion(deploy, strategy):
    d = deploy(versions=3)
    seen = _watch(d)
    result = Shift(d.context(), parse(strategy), poll_s=60).run()
    assert result.outcome == "completed" and (result.stable, result.target) == ("1", "3")
    assert d.alias() == {"version": "3", "weights": {}}
    expected = [{k: v for k, v in w.items() if k == "3"} for w in STRATEGIES[strategy]]
    assert seen == expected
    # baked every step for its minutes, in poll-sized waits
    bake = {"all-at-once": 0, "canary:10:5": 300, "linear:25:2": 360, "steps:5,25,50,100:3": 540}[strategy]
    assert sum(d.clock.slept) == pytest.approx(bake)
    assert max(d.clock.slept, default=0) <= 60
    record = d.context().records.read(d.function)
    assert (record.stable, record.previous) == ("3", "1")
    assert d.context().lock().current() is None


def test_alarm_mid_shift_rolls_back_to_stable(deploy):
    d = deploy(versions=3)

    def fire(clock):
        if len(clock.slept) == 3:  # in the middle of the first bake
            d.set_alarm("ALARM", reason="Threshold Crossed: 5 errors")

    d.clock.hooks.append(fire)
    with pytest.raises(RolledBack) as caught:
        Shift(d.context(), parse("linear:25:2"), poll_s=10).run()
    assert "rolled back to version 1" in str(caught.value) and "Threshold Crossed" in str(caught.value)
    assert caught.value.exit_code == 3
    assert d.alias() == {"version": "1", "weights": {}}
    assert d.context().records.read(d.function).stable == "1"
    assert d.context().lock().current() is None  # released on the way out


def test_alarm_already_firing_refuses_to_start(deploy):
    d = deploy(versions=2)
    d.set_alarm("ALARM")
    with pytest.raises(RolledBack):
        Shift(d.context(), parse("all-at-once")).run()
    assert d.alias() == {"version": "1", "weights": {}}


def test_insufficient_data_does_not_stop_a_shift(deploy):
    d = deploy(versions=2)
    d.set_alarm("INSUFFICIENT_DATA")
    assert Shift(d.context(), parse("canary:10:1")).run().outcome == "completed"


def test_interrupted_shift_releases_lock_and_resumes_from_current_weights(deploy):
    d = deploy(versions=3)

    def ctrl_c(clock):
        if d.alias()["weights"] == {"3": 0.5}:
            raise KeyboardInterrupt

    d.clock.hooks.append(ctrl_c)
    with pytest.raises(Interrupted) as caught:
        Shift(d.context(), parse("linear:25:2"), poll_s=30).run()
    message = str(caught.value)
    assert caught.value.exit_code == 130
    assert "resume:" in message and "--to 3 --strategy linear:25:2" in message and "rollback" in message
    assert d.alias() == {"version": "1", "weights": {"3": 0.5}}
    assert d.context().lock().current() is None

    d.clock.hooks.clear()
    seen = _watch(d)
    result = Shift(d.context(), parse("linear:25:2"), poll_s=30).run()
    assert result.steps == ["75%", "100%"]  # continued, did not start over at 25 %
    assert seen[-1] == {"3": 0.75} and {"3": 0.25} not in seen
    assert d.alias() == {"version": "3", "weights": {}}
    assert d.context().records.read(d.function).stable == "3"


def test_second_shift_is_refused_while_the_lock_is_held(deploy):
    d = deploy(versions=3)
    other = d.context(lock_owner="alice@laptop:1").lock()
    other.acquire("shift api to v2", target="2")
    with pytest.raises(LockHeld) as caught:
        Shift(d.context(), parse("all-at-once")).run()
    assert "alice@laptop:1" in str(caught.value) and caught.value.exit_code == 5
    assert d.alias() == {"version": "1", "weights": {}}
    assert other.current().owner == "alice@laptop:1"  # the refused shift did not touch it


def test_expired_lock_is_taken_over(deploy):
    d = deploy(versions=2)
    d.context(lock_owner="crashed@ci:9", lock_ttl_s=60).lock().acquire("shift api to v2")
    d.clock.t += 61
    result = Shift(d.context(), parse("all-at-once")).run()
    assert result.outcome == "completed" and d.alias()["version"] == "2"
    assert d.context().lock().current() is None


def test_shift_stops_when_the_alias_is_moved_under_it(deploy):
    d = deploy(versions=3)

    def someone_rolls_back(clock):
        if len(clock.slept) == 1:
            d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="1",
                                         RoutingConfig={"AdditionalVersionWeights": {}})

    d.clock.hooks.append(someone_rolls_back)
    with pytest.raises(AliasChanged):
        Shift(d.context(), parse("canary:10:5"), poll_s=60).run()
    assert d.alias() == {"version": "1", "weights": {}}  # left as the other party set it


def test_dry_run_changes_nothing(deploy):
    d = deploy(versions=2)
    result = Shift(d.context(), parse("canary:10:5")).run(dry_run=True)
    assert result.outcome == "dry-run" and result.steps == ["10%", "100%"]
    assert d.alias() == {"version": "1", "weights": {}}
    assert any("10% (300s) -> 100%" in m for m in d.messages)


def test_already_on_target_is_a_noop(deploy):
    d = deploy(versions=2, live="2")
    assert Shift(d.context(), parse("all-at-once")).run().outcome == "noop"


def test_unknown_version_is_a_clear_error(deploy):
    d = deploy(versions=2)
    with pytest.raises(NotFound, match="has no version 9"):
        Shift(d.context(), parse("all-at-once"), to="9").run()


def test_a_shift_to_another_version_in_flight_is_refused(deploy):
    d = deploy(versions=3)
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="1",
                                 RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    with pytest.raises(ReleaseError, match="a shift to version 2 is under way"):
        Shift(d.context(), parse("all-at-once"), to="3").run()


def test_direct_release_mode_is_refused(deploy):
    d = deploy(versions=2, release_mode="direct")
    with pytest.raises(ReleaseError, match="pulumi up"):
        Shift(d.context(), parse("all-at-once")).run()


def test_missing_alias_is_a_clear_error(deploy):
    d = deploy(versions=2)
    d.lambda_client.delete_alias(FunctionName=d.function, Name="live")
    with pytest.raises(NotFound, match="alias 'live'.*does not exist"):
        Shift(d.context(), parse("all-at-once")).run()


def test_missing_alarm_refuses_the_shift(deploy):
    d = deploy(versions=2)
    d.clients["cloudwatch"].delete_alarms(AlarmNames=[d.alarms[0]])
    with pytest.raises(NotFound, match="alarm"):
        Shift(d.context(), parse("all-at-once")).run()
    assert d.alias()["version"] == "1"
