"""POST /uploads: a pending item and the presigned POST the browser sends the image with."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from services.api import limits
from services.api.deps import CurrentUser, SessionDep, SettingsDep, SignerDep, StorageDep, threaded
from services.api.errors import AUTHENTICATED, ApiError, error_responses
from services.api.presenters import item_out
from services.api.schemas import PresignedPost, UploadRequest, UploadResponse
from services.core.models import Item, ItemStatus
from services.core.storage import upload_key

router = APIRouter(tags=["uploads"])


@router.post(
    "/uploads",
    status_code=201,
    response_model=UploadResponse,
    responses=error_responses(*AUTHENTICATED, 400, 413, 415, 429),
)
@threaded
def create_upload(
    body: UploadRequest,
    user: CurrentUser,
    session: SessionDep,
    storage: StorageDep,
    signer: SignerDep,
    settings: SettingsDep,
) -> UploadResponse:
    if body.size is not None and body.size > settings.max_upload_bytes:
        raise ApiError(413, "too_large", f"size {body.size} is over the limit of {settings.max_upload_bytes} bytes")
    if body.size is not None and body.size < settings.min_upload_bytes:
        raise ApiError(422, "invalid_request", f"size must be at least {settings.min_upload_bytes} bytes")
    limits.check_uploads(session, user.sub, settings)  # counted in this transaction, with the item
    item_id = uuid.uuid4()
    post = storage.presigned_post(user.sub, item_id, body.filename, body.content_type)
    item = Item(
        id=item_id,
        owner_id=user.sub,
        status=ItemStatus.pending,
        filename=body.filename,
        original_key=upload_key(user.sub, item_id, body.filename),
        content_type=body.content_type,
        bytes=body.size,
    )
    session.add(item)
    session.commit()
    return UploadResponse(item=item_out(item, signer), upload=PresignedPost(**post))
