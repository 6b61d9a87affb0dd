"""Release strategies: parsing `--strategy` and the step plan each one makes.

A plan is the list of weights the new version gets, each held (baked) for some seconds while the
alarms are watched; the last step is always 100 % (the alias moves to the new version, weights cleared).

    all-at-once            100 %
    canary:10:5            10 % for 5 min, then 100 %
    linear:25:2            25, 50, 75 % for 2 min each, then 100 %
    steps:5,25,50,100:3    5, 25, 50 % for 3 min each, then 100 %
"""

from __future__ import annotations

from dataclasses import dataclass


class StrategyError(ValueError):
    pass


@dataclass(frozen=True)
class Step:
    weight: float  # 0 < weight <= 1: the new version's share of invocations
    bake_s: float  # how long to hold the step (and watch alarms) before the next one

    @property
    def percent(self) -> str:
        return f"{self.weight * 100:g}%"


@dataclass(frozen=True)
class Strategy:
    text: str
    steps: tuple[Step, ...]

    def remaining(self, current_weight: float) -> tuple[Step, ...]:
        """The steps still to do when the new version already has `current_weight` (resume)."""
        return tuple(s for s in self.steps if s.weight > current_weight + 1e-9)


USAGE = "all-at-once | canary:PCT:MINUTES | linear:PCT:MINUTES | steps:P1,P2,...:MINUTES"


def _percent(text: str, strategy: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StrategyError(f"{strategy!r}: {text!r} is not a percentage") from None
    if not 0 < value <= 100:
        raise StrategyError(f"{strategy!r}: percentages must be in (0, 100], got {text}")
    return value


def _minutes(text: str, strategy: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise StrategyError(f"{strategy!r}: {text!r} is not a number of minutes") from None
    if value < 0:
        raise StrategyError(f"{strategy!r}: minutes must not be negative, got {text}")
    return value


def _plan(percents: list[float], minutes: float) -> tuple[Step, ...]:
    steps = [Step(round(p / 100, 6), minutes * 60) for p in percents if p < 100]
    return (*steps, Step(1.0, 0.0))


def parse(text: str) -> Strategy:
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind == "all-at-once":
        if rest:
            raise StrategyError(f"{text!r}: all-at-once takes no parameters")
        return Strategy(text, (Step(1.0, 0.0),))
    parts = rest.split(":") if rest else []
    if kind in ("canary", "linear"):
        if len(parts) != 2:
            raise StrategyError(f"{text!r}: expected {kind}:PCT:MINUTES")
        pct, minutes = _percent(parts[0], text), _minutes(parts[1], text)
        if pct >= 100:
            raise StrategyError(f"{text!r}: a {kind} step below 100 is needed (use all-at-once for 100)")
        if kind == "canary":
            return Strategy(text, _plan([pct], minutes))
        count = int(100 // pct)
        return Strategy(text, _plan([pct * i for i in range(1, count + 1)], minutes))
    if kind == "steps":
        if len(parts) != 2 or not parts[0]:
            raise StrategyError(f"{text!r}: expected steps:P1,P2,...:MINUTES")
        percents = [_percent(p, text) for p in parts[0].split(",")]
        if any(b <= a for a, b in zip(percents, percents[1:], strict=False)):
            raise StrategyError(f"{text!r}: step percentages must increase")
        return Strategy(text, _plan(percents, _minutes(parts[1], text)))
    raise StrategyError(f"unknown strategy {text!r}; use {USAGE}")
