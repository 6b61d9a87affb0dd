"""The AI factories: keys from the environment or from Secrets Manager (as the Pulumi program stores
them), the local stand-ins otherwise, one adapter per process and settings."""

import boto3

from services.core.ai import get_analyzer, get_embedder
from services.core.ai.local import LocalAnalyzer, LocalEmbedder
from services.core.ai.voyage import VoyageEmbedder
from services.core.settings import Settings


def test_keys_are_read_from_secrets_manager(aws):
    secrets = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    voyage = secrets.create_secret(Name="collections-test-voyage", SecretString="pa-from-secret")["ARN"]
    anthropic = secrets.create_secret(Name="collections-test-anthropic", SecretString="sk-from-secret")["ARN"]
    settings = Settings(_env_file=None, voyage_secret_arn=voyage, anthropic_secret_arn=anthropic)

    embedder = get_embedder(settings)
    assert isinstance(embedder, VoyageEmbedder)
    assert embedder._headers["Authorization"] == "Bearer pa-from-secret"
    analyzer = get_analyzer(settings)
    assert type(analyzer).__name__ == "AnthropicAnalyzer"


def test_without_keys_the_local_stand_ins_are_used_once_per_settings(monkeypatch):
    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    settings = Settings(_env_file=None)
    assert isinstance(get_embedder(settings), LocalEmbedder)
    assert isinstance(get_analyzer(settings), LocalAnalyzer)
    assert get_embedder(settings) is get_embedder(settings)
    assert get_embedder(Settings(_env_file=None)) is not get_embedder(settings)


def test_a_rotated_key_builds_a_new_adapter_once_the_cached_secret_expires(aws, monkeypatch):
    from services.core import secrets

    monkeypatch.delenv("VOYAGE_API_KEY", raising=False)
    client = boto3.client("secretsmanager", endpoint_url=aws, region_name="us-east-1")
    arn = client.create_secret(Name="collections-test-voyage-rotating", SecretString="pa-one")["ARN"]
    settings = Settings(_env_file=None, voyage_secret_arn=arn, secrets_max_age_s=0)  # every use reads it
    secrets.forget()
    first = get_embedder(settings)
    assert get_embedder(settings) is first  # same key: same adapter (and HTTP connections)
    client.put_secret_value(SecretId=arn, SecretString="pa-two")
    second = get_embedder(settings)
    assert second is not first
    assert second._headers["Authorization"] == "Bearer pa-two"
