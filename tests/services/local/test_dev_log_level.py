"""`make dev`'s log level: INFO by default, COLLECTIONS_LOG_LEVEL otherwise (benchmarks set WARNING),
and a clear refusal of a value that is not a level."""

from __future__ import annotations

import pytest

from services.local import dev


def test_the_dev_server_logs_at_info_by_default(monkeypatch):
    monkeypatch.delenv(dev.LOG_LEVEL_VARIABLE, raising=False)
    assert dev.log_level() == "INFO"


def test_collections_log_level_sets_it_in_any_case(monkeypatch):
    monkeypatch.setenv(dev.LOG_LEVEL_VARIABLE, " warning ")
    assert dev.log_level() == "WARNING"


def test_a_value_that_is_not_a_level_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(dev.LOG_LEVEL_VARIABLE, "quiet")
    with pytest.raises(SystemExit, match="COLLECTIONS_LOG_LEVEL='QUIET' is not a log level"):
        dev.log_level()

