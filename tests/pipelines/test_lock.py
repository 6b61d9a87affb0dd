"""The SSM lock: conditional create, expiry, safe takeover, renew, release."""

from __future__ import annotations

import json

import pytest

from pipelines.errors import LockHeld


def test_acquire_and_release(deploy):
    d = deploy(versions=1)
    lock = d.context(lock_owner="me").lock()
    record = lock.acquire("testing", target="1")
    assert lock.current() == record and record.owner == "me" and record.target == "1"
    lock.release()
    assert lock.current() is None


def test_held_lock_refuses_a_second_owner(deploy):
    d = deploy(versions=1)
    d.context(lock_owner="first").lock().acquire("one")
    with pytest.raises(LockHeld, match="held by first until"):
        d.context(lock_owner="second").lock().acquire("two")


def test_release_never_deletes_someone_elses_lock(deploy):
    d = deploy(versions=1)
    mine = d.context(lock_owner="me", lock_ttl_s=10).lock()
    mine.acquire()
    d.clock.t += 11
    theirs = d.context(lock_owner="them").lock()
    theirs.acquire()  # took over my expired lock
    mine.release()
    assert theirs.current().owner == "them"


def test_renew_extends_and_detects_a_lost_lock(deploy):
    d = deploy(versions=1)
    lock = d.context(lock_owner="me", lock_ttl_s=100).lock()
    first = lock.acquire()
    d.clock.t += 50
    lock.renew()
    assert lock.current().expires_at == pytest.approx(first.expires_at + 50)
    d.clock.t += 101
    d.context(lock_owner="them").lock().acquire()
    with pytest.raises(LockHeld, match="was lost"):
        lock.renew()


def test_only_one_of_two_racers_takes_over_an_expired_lock(deploy):
    d = deploy(versions=1)
    expired = d.context(lock_owner="dead", lock_ttl_s=1).lock().acquire()
    d.clock.t += 5
    # The other racer has already created the takeover marker for this expired lock.
    d.clients["ssm"].put_parameter(Name=f"/collections/{d.stack}/release/api/lock-takeover/{expired.id}",
                                   Value=json.dumps({"by": "racer"}), Type="String")
    with pytest.raises(LockHeld, match="taking over"):
        d.context(lock_owner="me").lock().acquire()


def test_takeover_marker_is_cleaned_up_on_release(deploy):
    d = deploy(versions=1)
    expired = d.context(lock_owner="dead", lock_ttl_s=1).lock().acquire()
    d.clock.t += 5
    lock = d.context(lock_owner="me").lock()
    assert lock.acquire().took_over == expired.id
    lock.release()
    names = [p["Name"] for p in d.clients["ssm"].get_parameters_by_path(
        Path=f"/collections/{d.stack}/release", Recursive=True)["Parameters"]]
    assert not any("lock" in n for n in names)


def test_unreadable_lock_record_can_be_taken_over(deploy):
    d = deploy(versions=1)
    d.clients["ssm"].put_parameter(Name=f"/collections/{d.stack}/release/api/lock", Value="garbage", Type="String")
    assert d.context(lock_owner="me").lock().acquire().owner == "me"
