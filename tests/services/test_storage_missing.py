"""What a missing S3 object looks like, on both sides of the agreement in services/catalog.py:

- IAM: every function that reads objects (s3:GetObject) may s3:ListBucket the bucket with no
  condition, because S3 answers a missing key with 404 only to such a caller, and 403 to others.
- Code: 404 (NoSuchKey/NotFound) is "missing"; 403 AccessDenied is an error, never "missing".

moto's server does not evaluate IAM (every caller may list), so the 403 side is played by botocore's
Stubber with the error S3 returns; the 404 side is checked against both the Stubber and moto.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from services import catalog
from services.core.settings import Settings
from services.core.storage import Storage, is_missing_object

BUCKET = "collections-missing-test"
KEY = "uploads/owner/00000000-0000-0000-0000-000000000001/photo.jpg"


@pytest.fixture
def stubbed() -> tuple[Storage, Stubber]:
    client = boto3.client("s3", region_name="us-east-1")
    storage = Storage(Settings(bucket=BUCKET), client=client)
    with Stubber(client) as stubber:
        yield storage, stubber
        stubber.assert_no_pending_responses()


def _error(stubber: Stubber, method: str, code: str, status: int) -> None:
    # HeadObject has no body, so S3's error code is the bare status ("404"/"403"); GetObject names it.
    stubber.add_client_error(method, service_error_code=code, http_status_code=status,
                             expected_params={"Bucket": BUCKET, "Key": KEY})


# --- the code side -------------------------------------------------------------------------------
def test_head_of_a_missing_object_is_none(stubbed):
    storage, stubber = stubbed
    _error(stubber, "head_object", "404", 404)
    assert storage.head(KEY) is None


def test_head_refused_is_an_error_not_a_missing_object(stubbed):
    storage, stubber = stubbed
    _error(stubber, "head_object", "403", 403)
    with pytest.raises(ClientError) as refused:
        storage.head(KEY)
    assert not is_missing_object(refused.value)


def test_read_of_a_missing_object_raises_no_such_key(stubbed):
    storage, stubber = stubbed
    _error(stubber, "get_object", "NoSuchKey", 404)
    with pytest.raises(storage.s3.exceptions.NoSuchKey):
        storage.read(KEY)


def test_read_refused_is_not_taken_for_a_missing_object(stubbed):
    storage, stubber = stubbed
    _error(stubber, "get_object", "AccessDenied", 403)
    with pytest.raises(ClientError) as refused:
        storage.read(KEY)
    assert not isinstance(refused.value, storage.s3.exceptions.NoSuchKey)
    assert not is_missing_object(refused.value)


def test_cleanup_keeps_a_pending_item_when_s3_refuses_to_say_whether_its_upload_exists(stubbed, db_url):
    """A 403 must not look like "the upload never arrived": cleanup would delete the item's row."""
    import uuid
    from datetime import UTC, datetime, timedelta

    from services.cleanup.logic import Cleanup
    from services.core.settings import get_settings
    from tests.services.pipeline.conftest import load_item, make_item

    storage, stubber = stubbed
    owner, item_id, filename = KEY.split("/")[1], uuid.UUID(KEY.split("/")[2]), KEY.split("/")[3]
    make_item(owner, filename, id=item_id, created_at=datetime.now(UTC) - timedelta(days=3))
    _error(stubber, "head_object", "403", 403)

    with pytest.raises(ClientError):
        Cleanup(get_settings(), storage=storage).run(dry_run=False)
    assert load_item(item_id) is not None


def test_moto_answers_missing_objects_as_s3_does_to_a_lister(aws):
    from services.core.storage import get_storage

    storage = get_storage()
    assert storage.head("uploads/nobody/none/none.jpg") is None
    with pytest.raises(storage.s3.exceptions.NoSuchKey):
        storage.read("uploads/nobody/none/none.jpg")


# --- the IAM side --------------------------------------------------------------------------------
def _readers() -> list[catalog.Function]:
    return [fn for fn in catalog.FUNCTIONS if any("s3:GetObject" in a.actions for a in fn.access)]


def test_every_function_that_reads_objects_may_list_the_whole_bucket():
    assert {fn.name for fn in _readers()} >= {"api", "image_processor", "analyzer", "cleanup"}
    for fn in _readers():
        listings = [a for a in fn.access if a.resource == "bucket" and "s3:ListBucket" in a.actions]
        assert any(a.prefix == "" for a in listings), f"{fn.name} reads objects but may not list the bucket"


def test_the_rendered_policy_grants_list_bucket_without_a_condition():
    from infra import iam

    bucket = "arn:aws:s3:::collections-test"
    for fn in _readers():
        policy = json.loads(iam.function_policy(
            fn, bucket_arn=bucket, event_bus_arn="arn:aws:events:us-east-1:123456789012:event-bus/b",
            log_group_arn="arn:aws:logs:us-east-1:123456789012:log-group:g",
            secret_arns={"database": "db", "anthropic": "an", "voyage": "vo"},
        ))
        listings = [s for s in policy["Statement"] if s["Action"] == ["s3:ListBucket"]]
        assert any(s["Resource"] == [bucket] and "Condition" not in s for s in listings), fn.name
