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
