"""rollback and promote on moto: one alias update, idempotent, no Pulumi."""

from __future__ import annotations

import pytest

from pipelines.errors import NotFound
from pipelines.rollback import promote, rollback
from pipelines.shift import Shift
from pipelines.strategies import parse


def _half_shifted(d):
    def stop(clock):
        if d.alias()["weights"]:
            raise KeyboardInterrupt

    d.clock.hooks.append(stop)
    with pytest.raises(Exception, match="interrupted"):
        Shift(d.context(), parse("canary:10:5")).run()
    d.clock.hooks.clear()
    assert d.alias() == {"version": "1", "weights": {"3": 0.1}}


def test_rollback_of_a_shift_under_way_is_idempotent(deploy):
    d = deploy(versions=3)
    _half_shifted(d)
    first = rollback(d.context())
    assert first.outcome == "moved" and d.alias() == {"version": "1", "weights": {}}
    second = rollback(d.context())
    assert second.outcome == "noop" and d.alias() == {"version": "1", "weights": {}}


def test_rollback_after_a_completed_release_goes_back_one_release_only(deploy):
    d = deploy(versions=3)
    Shift(d.context(), parse("all-at-once"), to="2").run()
    Shift(d.context(), parse("all-at-once"), to="3").run()
    assert rollback(d.context()).version == "2"
    assert d.alias() == {"version": "2", "weights": {}}
    assert rollback(d.context()).outcome == "noop"  # not further back to 1
    assert d.alias()["version"] == "2"


def test_rollback_restores_the_record_after_the_alias_was_moved_by_hand(deploy):
    d = deploy(versions=3)
    Shift(d.context(), parse("all-at-once"), to="2").run()
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="3")
    assert rollback(d.context()).version == "2" and d.alias()["version"] == "2"


def test_rollback_without_record_or_shift_says_so(deploy):
    d = deploy(versions=2)
    with pytest.raises(NotFound, match="nothing to roll back to"):
        rollback(d.context())


def test_rollback_without_record_uses_the_alias_primary_version(deploy):
    d = deploy(versions=3)
    d.lambda_client.update_alias(FunctionName=d.function, Name="live", FunctionVersion="2",
                                 RoutingConfig={"AdditionalVersionWeights": {"3": 0.4}})
    assert rollback(d.context()).version == "2" and d.alias() == {"version": "2", "weights": {}}


def test_promote_finishes_a_shift_and_records_it(deploy):
    d = deploy(versions=3)
    _half_shifted(d)
    moved = promote(d.context())
    assert moved.outcome == "moved" and d.alias() == {"version": "3", "weights": {}}
    record = d.context().records.read(d.function)
    assert (record.stable, record.previous) == ("3", "1")
    assert promote(d.context()).outcome == "noop"
    assert rollback(d.context()).version == "1"  # the promoted release can be rolled back
