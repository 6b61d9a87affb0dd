"""Settings: one place, every variable documented, bad values refused clearly."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.core import database
from services.core.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def env_names(name: str, field) -> list[str]:
    alias = field.validation_alias
    if alias is None:
        return [f"COLLECTIONS_{name.upper()}"]
    if isinstance(alias, str):
        return [alias]
    return list(alias.choices)


def test_every_setting_is_documented_in_the_readme():
    readme = README.read_text()
    missing = [
        env_names(name, field)[0]
        for name, field in Settings.model_fields.items()
        if not any(f"`{env}`" in readme for env in env_names(name, field))
    ]
    assert missing == []


def test_every_setting_has_a_description():
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_bad_values_are_refused_with_the_variable_named(monkeypatch):
    monkeypatch.setenv("COLLECTIONS_MAX_UPLOAD_BYTES", "-5")
    with pytest.raises(ValidationError, match="max_upload_bytes"):
        Settings()


def test_database_urls_are_pointed_at_psycopg3():
    assert database.normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert database.normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database.normalize_url("postgresql+psycopg://x") == "postgresql+psycopg://x"


def test_missing_database_configuration_says_what_to_do(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(database.DatabaseNotConfigured, match="DATABASE_URL"):
        database.database_url(Settings(_env_file=None))


def test_the_pending_timeout_defaults_to_its_floor_and_refuses_less(monkeypatch):
    from services import catalog

    floor = catalog.pending_timeout_floor_minutes()
    # max event age + the longest lease (Lambda's longest invocation + margin) + cleanup's interval
    assert floor * 60 >= 6 * 3600 + 900 + 30 + 3600
    assert Settings(_env_file=None).pending_timeout_minutes == floor
    monkeypatch.setenv("COLLECTIONS_PENDING_TIMEOUT_MINUTES", str(floor - 1))
    with pytest.raises(ValidationError, match=f"below its floor of {floor} minutes.*maximum event age"):
        Settings(_env_file=None)
    monkeypatch.setenv("COLLECTIONS_PENDING_TIMEOUT_MINUTES", str(floor + 60))
    assert Settings(_env_file=None).pending_timeout_minutes == floor + 60
    # A longer configured lease raises the floor, and the default with it.
    monkeypatch.delenv("COLLECTIONS_PENDING_TIMEOUT_MINUTES")
    monkeypatch.setenv("COLLECTIONS_STAGE_LEASE_S", "7200")
    assert Settings(_env_file=None).pending_timeout_minutes == catalog.pending_timeout_floor_minutes(7200) > floor
