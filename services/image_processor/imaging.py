"""Pillow work of the image processor: bytes in, validated facts and WebP thumbnails out.

Knows nothing about S3, the database or events, so it is tested and benchmarked on bytes alone.
Speed: JPEGs are decoded at a reduced DCT scale (`draft`) close to the largest thumbnail, other
formats are shrunk by an integer box `reduce` first, and only then resized with a good filter;
the small thumbnail is made from the big one. A 24-megapixel JPEG never exists at full size.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

# At import (only the image processor's work imports this module): Pillow is part of its first event's imports,
# made before the collector resumes (services/core/coldstart.py). WebPImagePlugin: see WEBP_PLUGIN.
from PIL import Image, UnidentifiedImageError, WebPImagePlugin  # noqa: F401

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# WEBP_PLUGIN: Pillow's preinit registers BMP, GIF, JPEG, PPM and PNG only. Opening with WEBP among the
# formats, or saving WebP thumbnails, would call Image.init(), which imports every plugin Pillow has
# (~45 more modules, ~40 ms of a cold start); importing PIL.WebPImagePlugin registers WebP and keeps it out.
WEBP_QUALITY = 80
# libwebp method 0 (fast) .. 6 (small): on photos at 1024 px, 0 is ~10% larger than the default 4
# at under a third of its time (and no larger than 1 or 2).
WEBP_METHOD = 0
# Shrink with a cheap integer box filter down to this many times the target first, then use the real
# filter on the rest: visually the same as filtering all the way, at a fraction of the cost.
REDUCING_GAP = 2.0


class ImageRejected(ValueError):
    """The upload is not an image we accept. The message is the short reason stored on the item
    and shown to its owner; `detail` is the library's own text, for the logs only."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.detail = detail


@dataclass(frozen=True)
class Thumbnail:
    size: int  # the requested long edge (the key's name); smaller originals are not upscaled
    width: int
    height: int
    data: bytes


@dataclass(frozen=True)
class ProcessedImage:
    format: str  # JPEG, PNG, WEBP, GIF
    width: int  # as displayed: after the EXIF orientation
    height: int
    sha256: str
    bytes: int
    thumbnails: dict[int, Thumbnail] = field(default_factory=dict)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _open(data: bytes, max_pixels: int):
    """Identify the image from its header only, then refuse what we do not take before decoding."""

    if not data:
        raise ImageRejected("empty file: the upload has no bytes")
    # Pillow's own bomb check (warning above the limit, error above twice it) follows our setting.
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageRejected(f"unsupported format: {_describe_other_format(data)}") from None
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"image too large: the limit is {max_pixels} pixels", str(error)) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageRejected("corrupt image: it could not be read", str(error)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"corrupt image: {width}x{height} pixels")
    if width * height > max_pixels:
        raise ImageRejected(f"image too large: {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    return image


def _describe_other_format(data: bytes) -> str:
    """Name the format when Pillow knows it (a BMP, a TIFF...), so the reason says what was sent."""
    try:
        with Image.open(io.BytesIO(data)) as other:
            return f"{other.format}; accepted formats are JPEG, PNG, WebP and GIF"
    except Exception:  # any failure here means "not an image we can name"
        return "not a recognised image (accepted formats are JPEG, PNG, WebP and GIF)"


def _to_display_mode(image):
    """RGB, or RGBA when the image has transparency; 16-bit greyscale scaled, not clipped."""
    mode = image.mode
    if mode in ("RGB", "RGBA"):
        return image
    if mode.startswith("I;16") or mode == "I":
        # 16-bit samples: convert("L") would clip everything above 255 to white.
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
        return image.convert("RGB")
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    # L, 1, CMYK, YCbCr, LAB, HSV, F
    return image.convert("RGB")


# EXIF orientation tag → PIL.Image.Transpose member (the table ImageOps.exif_transpose uses).
_ORIENTATION_TRANSPOSE = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _fit(width: int, height: int, long_edge: int) -> tuple[int, int]:
    """The size with `long_edge` on the longer side, aspect kept, never upscaled, never 0."""
    scale = min(1.0, long_edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def process_image(
    data: bytes, *, sizes: tuple[int, ...] = (256, 1024), max_pixels: int = 50_000_000, sha256: str | None = None
) -> ProcessedImage:
    """Validate and decode `data`, apply the EXIF orientation, and make one WebP per size.

    Raises ImageRejected with a human reason for anything we do not accept. Derivatives carry no
    EXIF/XMP (no GPS); the ICC profile is kept so colours stay right. `sha256`: the digest when
    the caller has it already.
    """
    sizes = tuple(sorted(set(sizes), reverse=True))
    image = _open(data, max_pixels)
    # Multi-picture JPEGs (MPO, from some cameras) are JPEGs whose first picture is the photo.
    fmt = "JPEG" if image.format == "MPO" else (image.format or "?")
    stored_w, stored_h = image.size
    largest = _fit(stored_w, stored_h, sizes[0])
    try:
        if fmt == "JPEG":
            # Decode at 1/2, 1/4 or 1/8 scale, never below the largest thumbnail.
            image.draft("RGB" if image.mode not in ("CMYK", "L") else image.mode, largest)
        image.seek(0)  # GIF: the first frame
        image.load()
        orientation = image.getexif().get(0x0112, 1)
        icc_profile = image.info.get("icc_profile")
        if icc_profile and icc_profile[16:20] != b"RGB ":
            icc_profile = None  # a CMYK or grey profile would be wrong on the RGB thumbnails
        image = _to_display_mode(image)
        # reducing_gap: an integer box `reduce` first (cheap), then BICUBIC over the last factor
        # of at most 2, where it is indistinguishable from LANCZOS and a quarter faster.
        big = (
            image.resize(largest, Image.Resampling.BICUBIC, reducing_gap=REDUCING_GAP)
            if image.size != largest
            else image
        )
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"image too large: the limit is {max_pixels} pixels", str(error)) from None
    except MemoryError:
        raise  # the function's memory, not the image's fault: let the retry (or a bigger size) decide
    except Exception as error:
        # Pure computation on these bytes: whatever fails here fails the same way every time.
        raise ImageRejected("corrupt or truncated image: it could not be decoded", str(error)) from None

    transpose = _ORIENTATION_TRANSPOSE.get(orientation)
    if transpose is not None:
        # Rotating the small image is cheaper than rotating the original, and the same picture.
        big = big.transpose(Image.Transpose[transpose])
    display_w, display_h = (stored_h, stored_w) if orientation in (5, 6, 7, 8) else (stored_w, stored_h)

    thumbnails: dict[int, Thumbnail] = {}
    current = big
    for size in sizes:
        target = _fit(display_w, display_h, size)
        if current.size != target:
            current = current.resize(target, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        thumbnails[size] = Thumbnail(size, current.width, current.height, _webp(current, icc_profile))
    return ProcessedImage(
        format=fmt,
        width=display_w,
        height=display_h,
        sha256=sha256 or sha256_of(data),
        bytes=len(data),
        thumbnails=thumbnails,
    )


def _webp(image, icc_profile: bytes | None) -> bytes:
    out = io.BytesIO()
    options = {"quality": WEBP_QUALITY, "method": WEBP_METHOD}
    if icc_profile:
        options["icc_profile"] = icc_profile
    # No exif/xmp passed: Pillow's WebP writer only embeds metadata it is given.
    image.save(out, "WEBP", **options)
    return out.getvalue()
