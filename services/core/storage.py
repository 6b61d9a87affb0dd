"""S3: object keys, presigned POST/GET, and the object operations the services use.

Keys:  uploads/{sub}/{item_id}/{filename}        what the browser sent (presigned POST); a candidate only
       originals/{sub}/{item_id}/{filename}      the verified original, written by the image processor
       thumbnails/{sub}/{item_id}/{size}.webp     derivatives (written by the image processor)
The presigned POST policy pins the exact key, the exact Content-Type (one of IMAGE_TYPES) and a
size range; AWS enforces it, but nothing downstream trusts it (moto does not check policies, and
neither should we). A presigned POST can be replayed until it expires, so the uploader can always
rewrite uploads/...: that is why what the API serves is the processor's copy under originals/,
which the api role (the presigned POST's signer) has no right to write.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from services import catalog
from services.core.settings import ProgramSettings, get_settings

_SAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
MAX_FILENAME = 128
# The error codes S3 gives for a key that does not exist, to a caller that may list the bucket
# (every reader does: services/catalog.py LIST_BUCKET). 403 AccessDenied is never "missing".
MISSING_OBJECT_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def is_missing_object(error: Exception) -> bool:
    """True when a botocore ClientError says the object does not exist (404), not that access was denied."""
    response = getattr(error, "response", None) or {}
    return response.get("Error", {}).get("Code") in MISSING_OBJECT_CODES


# The media types the pipeline can process, and the Pillow format each must decode as. Raster
# only: an SVG (or anything a browser could run as a document) is never accepted.
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}
FORMAT_TYPES = {fmt: media_type for media_type, fmt in IMAGE_TYPES.items()}
# What an unverified upload is served as: a download, never rendered by the browser.
UNVERIFIED_TYPE = "application/octet-stream"


class InvalidKey(ValueError):
    pass


def image_type(value: str) -> str:
    """The canonical (lowercase) media type of an accepted image type; ValueError for anything else."""
    media_type = value.strip().lower()
    if media_type not in IMAGE_TYPES:
        raise ValueError(f"must be one of {', '.join(IMAGE_TYPES)}")
    return media_type


def attachment(filename: str) -> str:
    """A Content-Disposition that makes browsers download, never render (safe_filename is plain ASCII)."""
    return f'attachment; filename="{safe_filename(filename)}"'


class ObjectTooLarge(ValueError):
    pass


def safe_filename(filename: str) -> str:
    """A filename safe in a key: no path, no odd characters, bounded length, never empty."""
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = _SAFE_FILENAME.sub("-", name).strip(".-") or "image"
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_FILENAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:MAX_FILENAME]
    return name


def upload_prefix(owner_id: str, item_id: uuid.UUID) -> str:
    return f"{catalog.UPLOADS_PREFIX}{owner_id}/{item_id}/"


def upload_key(owner_id: str, item_id: uuid.UUID, filename: str) -> str:
    return upload_prefix(owner_id, item_id) + safe_filename(filename)


def verified_original_key(upload: str) -> str:
    """Where the processor keeps the verified copy of the upload at `upload` (same sub/item/filename)."""
    if not upload.startswith(catalog.UPLOADS_PREFIX):
        raise InvalidKey(f"key {upload!r} is not under {catalog.UPLOADS_PREFIX}")
    return catalog.ORIGINALS_PREFIX + upload[len(catalog.UPLOADS_PREFIX) :]


def original_prefix(owner_id: str, item_id: uuid.UUID) -> str:
    return f"{catalog.ORIGINALS_PREFIX}{owner_id}/{item_id}/"


def thumbnail_key(owner_id: str, item_id: uuid.UUID, size: int) -> str:
    return f"{catalog.THUMBNAILS_PREFIX}{owner_id}/{item_id}/{size}.webp"


def thumbnail_prefix(owner_id: str, item_id: uuid.UUID) -> str:
    return f"{catalog.THUMBNAILS_PREFIX}{owner_id}/{item_id}/"


@dataclass(frozen=True)
class UploadKey:
    owner_id: str
    item_id: uuid.UUID
    filename: str


def parse_upload_key(key: str) -> UploadKey:
    """uploads/{sub}/{item_id}/{filename} → its parts; InvalidKey for anything else."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] + "/" != catalog.UPLOADS_PREFIX or not parts[1] or not parts[3]:
        raise InvalidKey(f"key {key!r} is not uploads/{{owner}}/{{item_id}}/{{filename}}")
    try:
        item_id = uuid.UUID(parts[2])
    except ValueError:
        raise InvalidKey(f"key {key!r} does not carry an item id") from None
    return UploadKey(owner_id=parts[1], item_id=item_id, filename=parts[3])


class Storage:
    def __init__(self, settings: ProgramSettings | None = None, client: Any = None):
        self.settings = settings or get_settings()
        if client is None:
            from services.core.aws import client as aws_client

            client = aws_client("s3", self.settings)
        self.s3 = client
        self.bucket = self.settings.bucket

    # --- presigned URLs -------------------------------------------------------------------
    def presigned_post(self, owner_id: str, item_id: uuid.UUID, filename: str, content_type: str) -> dict[str, Any]:
        key = upload_key(owner_id, item_id, filename)
        content_type = image_type(content_type)
        # Every form field must match a condition (S3 refuses extra fields), so the uploader can
        # change neither the key (botocore adds {"key": key}) nor the type (`eq`) nor add headers.
        conditions = [
            {"bucket": self.bucket},
            ["starts-with", "$key", upload_prefix(owner_id, item_id)],
            ["eq", "$Content-Type", content_type],
            ["content-length-range", self.settings.min_upload_bytes, self.settings.max_upload_bytes],
        ]
        post = self.s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=conditions,
            ExpiresIn=self.settings.upload_url_ttl_s,
        )
        return {"url": post["url"], "fields": post["fields"], "key": key, "expires_in": self.settings.upload_url_ttl_s}

    def presigned_get(self, key: str, content_type: str | None = None, disposition: str | None = None) -> str:
        """A GET URL; `content_type`/`disposition` become response-content-type/-disposition, which S3
        sends instead of the stored headers (signed, so the holder of the URL cannot change them)."""
        params = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:
            params["ResponseContentType"] = content_type
        if disposition is not None:
            params["ResponseContentDisposition"] = disposition
        return self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=self.settings.download_url_ttl_s)

    # --- objects --------------------------------------------------------------------------
    def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata; None when it does not exist (404). A 403 raises: see MISSING_OBJECT_CODES."""
        try:
            return self.s3.head_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.ClientError as error:
            if is_missing_object(error):
                return None
            raise

    def read(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; ObjectTooLarge before downloading more than `max_bytes`.

        A missing object raises the client's NoSuchKey (404); a 403 raises a plain ClientError."""
        response = self.s3.get_object(Bucket=self.bucket, Key=key)
        size = response.get("ContentLength")
        if max_bytes is not None and size is not None and size > max_bytes:
            response["Body"].close()
            raise ObjectTooLarge(f"object is {size} bytes; the limit is {max_bytes}")
        body = response["Body"].read() if max_bytes is None else response["Body"].read(max_bytes + 1)
        if max_bytes is not None and len(body) > max_bytes:
            raise ObjectTooLarge(f"object is over the limit of {max_bytes} bytes")
        return body

    def write(self, key: str, data: bytes, content_type: str, disposition: str | None = None) -> None:
        extra = {"ContentDisposition": disposition} if disposition else {}
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type, **extra)

    def copy(self, source_key: str, target_key: str) -> None:
        self.s3.copy_object(Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key})

    def delete(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})

    def delete_prefix(self, prefix: str) -> int:
        keys = [obj["Key"] for obj in self.list(prefix)]
        self.delete(keys)
        return len(keys)

    def list(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])


def get_storage() -> Storage:
    return Storage()
