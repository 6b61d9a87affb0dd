"""`make dev` notices its PostgreSQL dying: the watch calls back once when the server is gone,
never while it runs or after it was stopped on purpose; `alive()` reads the real postmaster."""

from __future__ import annotations

import threading
from pathlib import Path

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


def test_a_postmaster_that_died_but_was_not_reaped_is_dead(tmp_path):
    """kill(pid, 0) succeeds on a zombie: a killed postmaster that nobody reaped must not look alive."""
    import subprocess
    import time

    from services.local.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(data_dir=tmp_path, _server=None)
    running = subprocess.Popen(["sleep", "30"])
    exited = subprocess.Popen(["true"])  # our child: a zombie until we wait for it
    try:
        (tmp_path / "postmaster.pid").write_text(f"{running.pid}\n{tmp_path}\n")
        assert server.alive()
        deadline = time.monotonic() + 10
        while "Z" not in (Path("/proc") / str(exited.pid) / "stat").read_text().rsplit(")", 1)[1][:3]:
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.05)
        (tmp_path / "postmaster.pid").write_text(f"{exited.pid}\n{tmp_path}\n")
        assert not server.alive()
    finally:
        running.kill()
        running.wait()
        exited.wait()
