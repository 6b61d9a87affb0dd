"""Event contracts: one typed model per detail-type on the custom bus, and the AWS envelopes.

Every detail carries `schema_version`; consumers accept versions they know and fail clearly on
others. Source is always `collections.pipeline` (services.catalog.PIPELINE_SOURCE).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from services import catalog
from services.core.thumbnails import analysis_thumbnail


class Detail(BaseModel):
    """Base of every pipeline event detail."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    DETAIL_TYPE: ClassVar[str]

    schema_version: Literal[1] = 1
    item_id: uuid.UUID
    owner_id: str


    @classmethod
    def from_item(cls, item: Any) -> Detail:
        """This event for an item (a row of services.core.models.Item), as the stage runner publishes
        it and retry re-emits it; ValueError (pydantic's) when the item lacks what the event needs."""
        return cls.model_validate({"item_id": item.id, "owner_id": item.owner_id, **cls._fields_of(item)})

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, Any]:
        return {}


class ProcessingRequested(Detail):
    """Asks the image processor to (re)process an uploaded original: emitted by retry."""

    DETAIL_TYPE: ClassVar[str] = catalog.PROCESSING_REQUESTED
    key: str

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, Any]:
        return {"key": item.original_key}


class ImageProcessed(Detail):
    DETAIL_TYPE: ClassVar[str] = catalog.IMAGE_PROCESSED
    thumbnail_key: str  # the item's analysis_thumbnail_key (the analyzer reads the item's own, not this)
    sha256: str

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, Any]:
        return {"thumbnail_key": analysis_thumbnail(item), "sha256": item.sha256}


class ImageAnalyzed(Detail):
    DETAIL_TYPE: ClassVar[str] = catalog.IMAGE_ANALYZED
    analysis_model: str

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, Any]:
        return {"analysis_model": item.analysis_model}


class ImageReady(Detail):
    DETAIL_TYPE: ClassVar[str] = catalog.IMAGE_READY
    embedding_model: str

    @classmethod
    def _fields_of(cls, item: Any) -> dict[str, Any]:
        return {"embedding_model": item.embedding_model}


class ItemFailed(Detail):
    DETAIL_TYPE: ClassVar[str] = catalog.ITEM_FAILED
    stage: Literal[catalog.STAGE_NAMES]  # type: ignore[valid-type]  # the stage table's names
    reason: str


class ItemEdited(Detail):
    """The user changed what the item's embedding stands for (title, description, tags). The
    embedder embeds the item's text again; `text_sha256` names the text after this edit, so a
    delivery that arrives before the edit is committed, or after a newer edit, can tell."""

    DETAIL_TYPE: ClassVar[str] = catalog.ITEM_EDITED
    text_sha256: str


DETAIL_MODELS: dict[str, type[Detail]] = {
    m.DETAIL_TYPE: m for m in (ProcessingRequested, ImageProcessed, ImageAnalyzed, ImageReady, ItemFailed, ItemEdited)
}


def event_for(detail_type: str, item: Any) -> Detail:
    """The `detail_type` event of an item (see Detail.from_item)."""
    return DETAIL_MODELS[detail_type].from_item(item)


class EventBridgeEvent(BaseModel):
    """The EventBridge envelope as Lambda (or an SQS target) receives it."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: str = "0"
    id: str
    detail_type: str = Field(alias="detail-type")
    source: str
    account: str = ""
    time: datetime
    region: str = ""
    resources: list[str] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)

    def pipeline_detail(self) -> Detail:
        """The typed detail of a pipeline event; ValueError for anything else."""
        if self.source != catalog.PIPELINE_SOURCE:
            raise ValueError(f"not a pipeline event: source {self.source!r}")
        model = DETAIL_MODELS.get(self.detail_type)
        if model is None:
            raise ValueError(f"unknown detail-type {self.detail_type!r}")
        return model.model_validate(self.detail)


class S3ObjectCreated(BaseModel):
    """`detail` of an S3 "Object Created" event delivered by EventBridge."""

    model_config = ConfigDict(extra="ignore")

    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None

    @classmethod
    def from_event(cls, event: EventBridgeEvent) -> S3ObjectCreated:
        if event.source != "aws.s3" or event.detail_type != "Object Created":
            raise ValueError(f"not an S3 Object Created event: {event.source} / {event.detail_type}")
        detail = event.detail
        obj = detail.get("object") or {}
        return cls(
            bucket=(detail.get("bucket") or {}).get("name", ""),
            key=obj.get("key", ""),
            size=obj.get("size"),
            etag=obj.get("etag"),
        )


class ScheduledInvocation(BaseModel):
    """A scheduled run, whichever way the schedule delivers it:

    - an EventBridge rule: the envelope with source "aws.events", detail-type "Scheduled Event"
      and detail {};
    - EventBridge Scheduler: the target's Input as given (by default nothing, i.e. {}); some
      setups wrap it in an envelope with source "aws.scheduler" whose detail is a JSON *string*;
    - a direct invoke or the local CLI: a plain object such as {"dry_run": true}.
    Options (`dry_run`) are read from the detail, or from the top level of a plain object.
    """

    model_config = ConfigDict(extra="ignore")

    source: str = "direct"
    dry_run: bool = False

    @classmethod
    def from_event(cls, event: Any) -> ScheduledInvocation:
        import json

        if event is None:
            return cls()
        if not isinstance(event, dict):
            raise ValueError(f"a scheduled event must be a JSON object, not {type(event).__name__}")
        options: Any = event
        if "detail-type" in event and "source" in event:
            options = event.get("detail") or {}
            if isinstance(options, str):
                try:
                    options = json.loads(options or "{}")
                except json.JSONDecodeError:
                    raise ValueError(f"the scheduled event's detail is not JSON: {options[:100]!r}") from None
            if not isinstance(options, dict):
                raise ValueError("the scheduled event's detail must be a JSON object")
            return cls(source=event["source"], dry_run=options.get("dry_run", False))
        return cls(dry_run=options.get("dry_run", False))
