"""Deterministic local stand-ins used when no API key is configured (dev, demo, tests)."""

from __future__ import annotations

import hashlib
import math
import re

_TOKEN = re.compile(r"[a-z0-9]+")
LOCAL_EMBEDDING_MODEL = "local-hash-v1"


def _features(text: str) -> list[str]:
    words = _TOKEN.findall(text.lower())
    # Words and short prefixes (crude stemming: "cats" ~ "cat"), so related texts share features.
    features = list(words)
    features += [w[:4] for w in words if len(w) > 4]
    features += [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]
    return features


class LocalEmbedder:
    """Feature hashing of words, prefixes and bigrams into a unit vector: texts sharing words are
    close in cosine distance, identical texts identical. Not semantic, but stable and honest."""

    model = LOCAL_EMBEDDING_MODEL

    def __init__(self, dimension: int):
        self.dimension = dimension

    def _embed(self, text: str) -> list[float]:
        vector = [0.0] * self.dimension
        for feature in _features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            sign = 1.0 if digest[4] & 1 else -1.0
            vector[index] += sign
        norm = math.sqrt(sum(v * v for v in vector))
        if norm == 0:
            # Empty text: a fixed unit vector, so distances stay defined.
            vector[0] = 1.0
            return vector
        return [v / norm for v in vector]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


LOCAL_ANALYZER_MODEL = "local-pixels-v1"
# Plain colour names and a representative sRGB value each; pixels take the nearest name.
COLOUR_NAMES: dict[str, tuple[int, int, int]] = {
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
    "white": (240, 240, 240),
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 160, 60),
    "teal": (30, 140, 140),
    "blue": (40, 90, 200),
    "navy": (20, 30, 90),
    "purple": (130, 50, 160),
    "pink": (240, 150, 190),
    "brown": (120, 75, 40),
    "beige": (220, 200, 160),
}


def nearest_colour_name(rgb: tuple[int, int, int]) -> str:
    return min(COLOUR_NAMES, key=lambda n: sum((a - b) ** 2 for a, b in zip(COLOUR_NAMES[n], rgb, strict=True)))


class LocalAnalyzer:
    """Describes an image from its pixels alone (orientation, size class, dominant colours), for
    running without an Anthropic key. Deterministic; says plainly that no vision model looked."""

    model = LOCAL_ANALYZER_MODEL

    def analyze(self, image: bytes, media_type: str):
        import io

        # WebPImagePlugin: thumbnails are WebP; registered, Image.open needs no Image.init() of every plugin
        # (services/image_processor/imaging.py WEBP_PLUGIN).
        from PIL import Image, ImageStat, UnidentifiedImageError, WebPImagePlugin  # noqa: F401

        from services.core.ai import AnalysisResult, ImageAnalysis, ModelOutputRejected

        try:
            with Image.open(io.BytesIO(image)) as opened:
                picture = opened.convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise ModelOutputRejected(f"the local analyzer cannot read the image: {error}") from None
        width, height = picture.size
        ratio = width / height
        orientation = "landscape" if ratio > 1.1 else "portrait" if ratio < 0.9 else "square"
        long_edge = max(width, height)
        size_class = "large" if long_edge >= 1024 else "medium" if long_edge >= 512 else "small"

        # Colour shares: a 64x64 sample quantised to 6 colours, each named, shares summed per name.
        sample = picture.resize((64, 64))
        quantised = sample.quantize(colors=6, method=Image.Quantize.MEDIANCUT)
        palette = quantised.getpalette() or []
        shares: dict[str, int] = {}
        for count, index in quantised.getcolors() or []:
            rgb = tuple(palette[index * 3 : index * 3 + 3])
            name = nearest_colour_name(rgb)  # type: ignore[arg-type]
            shares[name] = shares.get(name, 0) + count
        colours = [name for name, _ in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))][:4]
        brightness = ImageStat.Stat(sample.convert("L")).mean[0]
        tone = "dark" if brightness < 70 else "bright" if brightness > 185 else "mid-tone"

        colour_text = ", ".join(colours[:-1]) + f" and {colours[-1]}" if len(colours) > 1 else colours[0]
        analysis = ImageAnalysis(
            title=f"{orientation.capitalize()} image in {colour_text}",
            description=(
                f"A {size_class} {orientation} {tone} image ({width}x{height} px), mostly {colour_text}. "
                "Described locally from its pixels: no vision model was used."
            ),
            category="other",
            tags=[orientation, size_class, tone, *colours],
            colors=colours,
            visible_text=None,
        )
        return AnalysisResult(analysis=analysis, model=self.model, usage={})
