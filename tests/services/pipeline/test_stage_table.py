"""The stage table (services/catalog.py STAGES) is the one declaration of the item life cycle: every
other place that knows about stages or statuses is derived from it."""

from __future__ import annotations

import typing

from services import catalog
from services.api.schemas import VisibleStatus
from services.core import pipeline_store, retry
from services.core.contracts import DETAIL_MODELS, ItemFailed
from services.core.models import ItemStatus, Stage


def test_status_order_is_each_stages_input_then_the_last_output():
    expected = [s.input_status for s in catalog.STAGES] + [catalog.STAGES[-1].output_status]
    assert list(catalog.STATUS_ORDER) == expected
    assert sorted(pipeline_store.STATUS_ORDER, key=pipeline_store.STATUS_ORDER.get) == expected


def test_the_stages_form_a_chain():
    for before, after in zip(catalog.STAGES, catalog.STAGES[1:], strict=False):
        assert after.input_status == before.output_status
        assert before.emits in after.consumes


def test_enums_of_the_models_follow_the_table():
    assert [s.value for s in Stage] == [s.name for s in catalog.STAGES]
    assert [s.value for s in ItemStatus] == [*catalog.STATUS_ORDER, "failed", "deleted"]


def test_item_failed_stage_literal_is_the_stage_names():
    assert typing.get_args(ItemFailed.model_fields["stage"].annotation) == catalog.STAGE_NAMES


def test_visible_statuses_are_the_pipeline_and_failed():
    assert typing.get_args(VisibleStatus) == (*catalog.STATUS_ORDER, "failed")


def test_retry_puts_an_item_back_at_its_stages_input_status():
    assert {stage.value: status.value for stage, status in retry.STAGE_INPUT_STATUS.items()} == {
        s.name: s.input_status for s in catalog.STAGES
    }


def test_stage_functions_are_triggered_by_what_their_stage_consumes():
    for s in catalog.STAGES:
        fn = catalog.function(s.function)
        consumed = {dt for t in fn.triggers_of("event") for dt in t.detail_types}
        assert set(s.consumes) <= consumed, s.name
        assert bool(fn.triggers_of("s3")) is s.starts_on_upload, s.name


def test_every_event_the_table_names_has_a_contract_that_an_item_can_make():
    for s in catalog.STAGES:
        for detail_type in (*s.consumes, s.emits):
            assert hasattr(DETAIL_MODELS[detail_type], "from_item"), detail_type


def test_each_stage_work_is_declared_by_its_class():
    import importlib

    for s in catalog.STAGES:
        module, attribute = s.work.rsplit(".", 1)
        work = getattr(importlib.import_module(module), attribute)
        assert work.stage_name == s.name
        assert catalog.function(s.function).module == f"{module.rsplit('.', 1)[0]}.handler"
