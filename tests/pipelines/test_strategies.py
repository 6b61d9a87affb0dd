"""Parsing --strategy into step plans."""

from __future__ import annotations

import pytest

from pipelines.strategies import Step, StrategyError, parse


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("all-at-once", [(1.0, 0)]),
        ("canary:10:5", [(0.1, 300), (1.0, 0)]),
        ("linear:25:2", [(0.25, 120), (0.5, 120), (0.75, 120), (1.0, 0)]),
        ("linear:30:1", [(0.3, 60), (0.6, 60), (0.9, 60), (1.0, 0)]),
        ("steps:5,25,50,100:3", [(0.05, 180), (0.25, 180), (0.5, 180), (1.0, 0)]),
        ("steps:1,50:0.5", [(0.01, 30), (0.5, 30), (1.0, 0)]),
    ],
)
def test_plans(text, steps):
    assert [(s.weight, s.bake_s) for s in parse(text).steps] == steps


def test_remaining_steps_resume_after_the_current_weight():
    plan = parse("steps:5,25,50,100:3")
    assert [s.percent for s in plan.remaining(0.25)] == ["50%", "100%"]
    assert plan.remaining(1.0) == ()
    assert Step(0.05, 0).percent == "5%"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("blue-green", "unknown strategy"),
        ("all-at-once:5", "takes no parameters"),
        ("canary:10", "expected canary:PCT:MINUTES"),
        ("canary:ten:5", "not a percentage"),
        ("canary:0:5", r"\(0, 100\]"),
        ("canary:100:5", "below 100"),
        ("linear:10:-1", "must not be negative"),
        ("steps:50,25:1", "must increase"),
        ("steps::1", "expected steps"),
    ],
)
def test_bad_strategies_say_what_is_wrong(text, message):
    with pytest.raises(StrategyError, match=message):
        parse(text)
