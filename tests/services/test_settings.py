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


# --- settings per program; required on AWS ---------------------------------------------------
LAMBDA_ENV = {"AWS_LAMBDA_FUNCTION_NAME": "collections-test-analyzer-blue"}


def test_every_catalog_function_has_its_settings_class():
    from services import catalog
    from services.core.settings import FUNCTION_SETTINGS

    assert set(FUNCTION_SETTINGS) == {f.name for f in catalog.FUNCTIONS}


def test_each_program_reads_only_its_groups():
    from services.core.settings import AnalyzerSettings, EmbedderSettings, MigrateSettings, ReleaseSettings

    assert not {"cognito_client_id", "page_size_max"} & set(AnalyzerSettings.model_fields)
    assert "bucket" not in EmbedderSettings.model_fields and "anthropic_secret_arn" not in EmbedderSettings.model_fields
    assert set(MigrateSettings.model_fields) >= {"database_url", "database_secret_arn"}
    assert "bucket" not in ReleaseSettings.model_fields and "stack_outputs" in ReleaseSettings.model_fields


def test_locally_the_defaults_apply(monkeypatch):
    from services.core.settings import AnalyzerSettings

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("COLLECTIONS_BUCKET", raising=False)
    assert AnalyzerSettings(_env_file=None).bucket == "collections-local"


def test_on_lambda_a_missing_variable_is_named(monkeypatch):
    from services.core.settings import AnalyzerSettings, MissingSettings

    for name, value in {**LAMBDA_ENV, "COLLECTIONS_DATABASE_SECRET_ARN": "arn:db", "COLLECTIONS_EVENT_BUS": "bus",
                        "COLLECTIONS_ANTHROPIC_SECRET_ARN": "arn:key",
                        "COLLECTIONS_METRICS_NAMESPACE": "Collections/test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("COLLECTIONS_BUCKET", raising=False)
    with pytest.raises(MissingSettings, match=r"^COLLECTIONS_BUCKET is required on AWS Lambda \(AnalyzerSettings"):
        AnalyzerSettings(_env_file=None)
    monkeypatch.setenv("COLLECTIONS_BUCKET", "")  # empty is not set
    with pytest.raises(MissingSettings, match="COLLECTIONS_BUCKET"):
        AnalyzerSettings(_env_file=None)
    monkeypatch.setenv("COLLECTIONS_BUCKET", "collections-test-bucket")
    assert AnalyzerSettings(_env_file=None).bucket == "collections-test-bucket"


def test_on_lambda_either_variable_of_a_pair_will_do_and_both_are_named_when_neither_is_set(monkeypatch):
    from services.core.settings import MigrateSettings, MissingSettings

    for name, value in {**LAMBDA_ENV, "COLLECTIONS_METRICS_NAMESPACE": "Collections/test"}.items():
        monkeypatch.setenv(name, value)
    for name in ("DATABASE_URL", "COLLECTIONS_DATABASE_URL", "COLLECTIONS_DATABASE_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    pair = r"^COLLECTIONS_DATABASE_SECRET_ARN \(or DATABASE_URL / COLLECTIONS_DATABASE_URL\) is required"
    with pytest.raises(MissingSettings, match=pair):
        MigrateSettings(_env_file=None)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert MigrateSettings(_env_file=None).database_url


@pytest.mark.parametrize("function", ["api", "image_processor", "analyzer", "embedder", "cleanup", "migrate"])
def test_a_handler_without_its_variables_fails_its_cold_start_naming_them(function, tmp_path):
    """What Lambda would run: importing the handler module (the init phase), with only Lambda's own variables."""
    import os
    import subprocess
    import sys

    from services.core.settings import required_variables

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTIONS_", "DATABASE_URL"))}
    env.update({"AWS_LAMBDA_FUNCTION_NAME": f"collections-test-{function}-blue", "PYTHONPATH": str(root)})
    result = subprocess.run([sys.executable, "-c", f"import services.{function}.handler"], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("services.core.environment.MissingSettings: ")
    assert all(variable in last for variable in required_variables(function)), last


def test_the_required_variables_are_variables_of_each_functions_settings():
    from services.core.environment import REQUIRED_ON_AWS
    from services.core.settings import FUNCTION_SETTINGS

    for function, groups in REQUIRED_ON_AWS.items():
        cls = FUNCTION_SETTINGS[function]
        variables = {env for name, field in cls.model_fields.items() for env in env_names(name, field)}
        assert {name for group in groups for name in group} <= variables, function


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


# --- get_settings(): the running function's own class on Lambda --------------------------------
# A value for every variable any function requires on AWS (the first of each group).
REQUIRED_VALUES = {
    "COLLECTIONS_DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:db",
    "COLLECTIONS_BUCKET": "collections-test-bucket",
    "COLLECTIONS_EVENT_BUS": "collections-test-bus",
    "COLLECTIONS_COGNITO_USER_POOL_ID": "us-east-1_test",
    "COLLECTIONS_COGNITO_CLIENT_ID": "client",
    "COLLECTIONS_VOYAGE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:voyage",
    "COLLECTIONS_ANTHROPIC_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:anthropic",
    "COLLECTIONS_METRICS_NAMESPACE": "Collections/test",
}
FUNCTIONS = ["api", "image_processor", "analyzer", "embedder", "cleanup", "migrate"]


@pytest.fixture
def settings_caches():
    from services.core.settings import get_settings, settings_for

    get_settings.cache_clear()
    settings_for.cache_clear()
    yield
    get_settings.cache_clear()
    settings_for.cache_clear()


@pytest.fixture
def on_lambda(monkeypatch, settings_caches):
    """A Lambda environment with every required variable; returns a function to record the running one."""
    from services.core import environment

    assert set(REQUIRED_VALUES) == {group[0] for groups in environment.REQUIRED_ON_AWS.values() for group in groups}
    for name, value in {**LAMBDA_ENV, **REQUIRED_VALUES}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(environment, "_current_function", None)
    return environment.set_current_function


@pytest.mark.parametrize("function", FUNCTIONS)
def test_on_lambda_get_settings_is_the_functions_own_class(function, on_lambda):
    from services.core.settings import FUNCTION_SETTINGS, get_settings

    on_lambda(function)
    assert type(get_settings()) is FUNCTION_SETTINGS[function]
    assert get_settings() is get_settings()


def test_on_lambda_a_setting_outside_the_functions_class_is_an_attribute_error(on_lambda):
    from services.core.settings import get_settings

    on_lambda("embedder")
    assert get_settings().event_bus == "collections-test-bus"
    with pytest.raises(AttributeError, match="bucket"):
        get_settings().bucket  # noqa: B018  (the embedder has no bucket: no silent collections-local)


def test_on_lambda_without_a_recorded_function_get_settings_refuses(on_lambda):
    from services.core.settings import UnknownFunction, get_settings

    with pytest.raises(UnknownFunction, match=r"for_function\(name\)"):
        get_settings()


def test_off_lambda_get_settings_is_every_setting(monkeypatch, settings_caches):
    from services.core import environment
    from services.core.settings import get_settings

    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.setattr(environment, "_current_function", "embedder")
    assert type(get_settings()) is Settings


def test_only_catalog_functions_are_recorded():
    from services.core import environment

    with pytest.raises(KeyError, match="'reporting' is not a function of the catalog"):
        environment.set_current_function("reporting")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_handler_records_its_function_before_anything_reads_settings(function, tmp_path):
    """What Lambda runs: the handler module's import (the api's reads settings at once), then the code
    its first event imports (a stage's work; the migrations' schema), then settings as that code gets them."""
    import os
    import subprocess
    import sys

    from services import catalog

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COLLECTIONS_", "DATABASE_URL", "AWS_"))}
    env.update({**REQUIRED_VALUES, "AWS_LAMBDA_FUNCTION_NAME": f"collections-test-{function}-blue",
                "AWS_REGION": "us-east-1", "PYTHONPATH": str(root)})
    first_event = [s.work.rsplit(".", 1)[0] for s in catalog.STAGES if s.function == function]
    first_event += ["services.core.models"]
    script = (
        "import importlib\n"
        f"importlib.import_module({catalog.function(function).module!r})\n"
        f"for module in {first_event!r}:\n"
        "    importlib.import_module(module)\n"
        "from services.core.settings import get_settings\n"
        "print(type(get_settings()).__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    from services.core.settings import FUNCTION_SETTINGS

    assert result.stdout.strip().splitlines()[-1] == FUNCTION_SETTINGS[function].__name__


def test_a_new_functions_settings_and_requirements_come_from_its_catalog_entry():
    """Adding a stage's function takes its catalog entry only (README, "Adding a stage"): its settings
    class and what it requires on AWS are built from the groups the entry names."""
    from services import catalog
    from services.core import environment
    from services.core.settings import _function_settings

    tagger = catalog.Function(name="tagger", handler="services.tagger.handler.handler", description="Tags",
                              settings_groups=("database", "events", "claude", "stages"))
    required = environment._required(tagger.settings_groups, tagger.name)
    assert required == (environment.DATABASE, environment.EVENT_BUS, environment.ANTHROPIC,
                        environment.METRICS_NAMESPACE)
    import pytest as _pytest

    with _pytest.MonkeyPatch.context() as patch:
        patch.setitem(environment.REQUIRED_ON_AWS, "tagger", required)  # what the catalog entry would derive
        cls = _function_settings(tagger)
    assert cls.__name__ == "TaggerSettings" and cls.required_on_aws == required
    assert {"event_bus", "anthropic_api_key", "stage_lease_s", "database_url"} <= set(cls.model_fields)
    assert "bucket" not in cls.model_fields  # no group it did not name


@pytest.mark.parametrize("build", ["settings", "environment"])
def test_an_unknown_settings_group_in_the_catalog_is_an_error(build):
    from services import catalog
    from services.core import environment
    from services.core.settings import _function_settings

    odd = catalog.Function(name="odd", handler="services.odd.handler.handler", description="?",
                           settings_groups=("database", "databse"))
    with pytest.raises(KeyError, match="databse"):
        if build == "settings":
            _function_settings(odd)
        else:
            environment._required(odd.settings_groups, odd.name)
