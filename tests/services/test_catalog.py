"""The catalog is the topology: dependency-free, consistent, and every handler it names exists."""

import importlib
import json
import subprocess
import sys

import pytest

from services import catalog


def test_catalog_imports_nothing_third_party():
    code = (
        "import sys, json; before = set(sys.modules); import services.catalog; "
        "print(json.dumps(sorted(set(sys.modules) - before)))"
    )
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    third_party = [m for m in loaded if not m.startswith("services") and m.split(".")[0] not in sys.stdlib_module_names]
    assert third_party == []


def test_function_names_are_unique_and_lambda_sized():
    names = [f.name for f in catalog.FUNCTIONS]
    assert len(names) == len(set(names))
    for fn in catalog.FUNCTIONS:
        assert 128 <= fn.memory_mb <= 10240, fn.name
        assert 1 <= fn.timeout_s <= 900, fn.name
        assert fn.dependency_group in catalog.DEPENDENCY_GROUPS, fn.name


@pytest.mark.parametrize("fn", catalog.FUNCTIONS, ids=lambda f: f.name)
def test_every_handler_is_importable_and_callable(fn):
    module = importlib.import_module(fn.module)
    assert callable(getattr(module, fn.attribute))


def test_every_pipeline_detail_type_has_a_contract_and_a_consumer_or_is_terminal():
    from services.core.contracts import DETAIL_MODELS

    assert set(DETAIL_MODELS) == set(catalog.DETAIL_TYPES)
    consumed = {dt for fn in catalog.FUNCTIONS for t in fn.triggers_of("event") for dt in t.detail_types}
    # ImageReady and ItemFailed are facts for observers (and future consumers), not stage inputs.
    assert consumed == set(catalog.DETAIL_TYPES) - {catalog.IMAGE_READY, catalog.ITEM_FAILED}


def test_unknown_function_names_the_known_ones():
    with pytest.raises(KeyError, match="api"):
        catalog.function("nope")


def test_object_created_pattern_filters_bucket_and_prefix():
    pattern = catalog.ObjectCreatedTrigger().event_pattern("my-bucket")
    assert pattern["detail"] == {"bucket": {"name": ["my-bucket"]}, "object": {"key": [{"prefix": "uploads/"}]}}


def test_model_stages_reserved_concurrency_comes_from_the_connection_budget():
    per_stage = (
        (catalog.DATABASE_MAX_CONNECTIONS - catalog.CONNECTIONS_KEPT)
        // 2
        // len(catalog.MODEL_STAGE_FUNCTIONS)
        // catalog.CONNECTIONS_PER_INSTANCE
    )
    assert per_stage >= 1
    for name in catalog.MODEL_STAGE_FUNCTIONS:
        assert catalog.function(name).reserved_concurrency == per_stage == catalog.model_stage_concurrency()
    # Every reserved function at its reservation, each instance with a full pool, stays within the budget.
    reserved = sum((fn.reserved_concurrency or 0) * catalog.CONNECTIONS_PER_INSTANCE for fn in catalog.FUNCTIONS)
    assert reserved <= catalog.DATABASE_MAX_CONNECTIONS - catalog.CONNECTIONS_KEPT


def test_the_connections_kept_match_what_they_keep_them_for():
    """CONNECTIONS_KEPT names its parts: RDS's reserved slots (superuser_reserved_connections 3 and
    rds.rds_superuser_reserved_connections 2), cleanup and migrate at their reservations, operators."""
    assert catalog.RDS_RESERVED_CONNECTIONS == 3 + 2
    kept_for = sum(catalog.function(name).reserved_concurrency for name in ("cleanup", "migrate"))
    assert kept_for * catalog.CONNECTIONS_PER_INSTANCE == catalog.CLEANUP_AND_MIGRATE_CONNECTIONS
    assert catalog.CONNECTIONS_KEPT == (catalog.RDS_RESERVED_CONNECTIONS + catalog.CLEANUP_AND_MIGRATE_CONNECTIONS
                                        + catalog.OPERATOR_CONNECTIONS)
    # The figures README.md ("Connection budget and reserved concurrency") states.
    assert (catalog.DATABASE_MAX_CONNECTIONS, catalog.CONNECTIONS_KEPT, catalog.MODEL_STAGE_CONNECTIONS,
            catalog.model_stage_concurrency()) == (80, 16, 32, 5)
    assert (catalog.IMAGE_PROCESSOR_CONNECTIONS, catalog.image_processor_concurrency()) == (16, 5)


def test_every_stage_uploads_scale_has_a_reserved_concurrency_within_its_share():
    """A burst of uploads scales the image processor and the model stages; each is bounded, and together
    with cleanup and migrate they leave a quarter of the shared connections to the API."""
    for function in {stage.function for stage in catalog.STAGES}:
        assert catalog.function(function).reserved_concurrency, function
    processor = catalog.function("image_processor").reserved_concurrency
    assert processor * catalog.CONNECTIONS_PER_INSTANCE <= catalog.IMAGE_PROCESSOR_CONNECTIONS
    shared = catalog.DATABASE_MAX_CONNECTIONS - catalog.CONNECTIONS_KEPT
    stages = sum(catalog.function(name).reserved_concurrency for name in (*catalog.MODEL_STAGE_FUNCTIONS,
                                                                           "image_processor"))
    assert shared - stages * catalog.CONNECTIONS_PER_INSTANCE >= shared // 4


def test_the_budgets_pool_sizes_are_the_settings_defaults():
    from services.core.settings import Settings

    fields = Settings.model_fields
    assert (fields["db_pool_size"].default, fields["db_max_overflow"].default) == (
        catalog.DB_POOL_SIZE,
        catalog.DB_MAX_OVERFLOW,
    )
