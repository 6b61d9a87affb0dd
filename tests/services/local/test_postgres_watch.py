"""`make dev` notices its PostgreSQL dying: the watch calls back once when the server is gone,
never while it runs or after it was stopped on purpose; `alive()` reads the real postmaster."""

from __future__ import annotations

import threading

from services.local.postgres import watch


def test_death_is_reported_once():
    states = iter([True, True, False, False])
    died = threading.Event()
    calls = []

    def on_death():
        calls.append(1)
        died.set()

    watch(lambda: next(states, False), on_death, interval_s=0.01)
    assert died.wait(10)
    assert calls == [1]


def test_a_deliberate_stop_is_not_a_death():
    died = threading.Event()
    stop = watch(lambda: False, died.set, interval_s=0.2)
    stop.set()
    assert not died.wait(0.6)


def test_alive_reads_the_running_postmaster(pg, tmp_path):
    from services.local.postgres import EmbeddedPostgres

    assert pg.alive()
    assert not EmbeddedPostgres(data_dir=tmp_path, _server=None).alive()  # no postmaster.pid
