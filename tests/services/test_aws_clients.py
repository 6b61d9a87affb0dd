"""services/core/aws.py's data loader: botocore's, without the walk of every service folder per client."""

from __future__ import annotations

import pytest
from botocore.exceptions import UnknownServiceError
from botocore.loaders import Loader

from services.core import aws
from services.core.settings import Settings


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(aws, "_models", None)
    aws.reset()
    yield
    aws.reset()


def test_a_client_is_made_without_listing_every_service(monkeypatch):
    walked = []
    original = Loader.list_available_services

    def spy(self, type_name):
        walked.append(type_name)
        return original(self, type_name)

    monkeypatch.setattr(Loader, "list_available_services", spy)
    client = aws.client("events", Settings(aws_region="eu-west-1"))
    assert client.meta.service_model.service_name == "events"
    assert client.meta.region_name == "eu-west-1"
    assert walked == []


def test_an_unknown_service_is_still_refused_with_the_known_names():
    with pytest.raises(UnknownServiceError) as refused:
        aws.client("no-such-service", Settings(aws_region="us-east-1"))
    assert "s3" in str(refused.value) and "events" in str(refused.value)


def test_the_session_still_lists_its_services():
    services = aws._session().get_available_services()
    assert "s3" in services and "events" in services and list(services) == sorted(services)
