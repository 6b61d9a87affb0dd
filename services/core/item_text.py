"""The text an item's embedding stands for, and its hash.

Apart from the embedder's stage code on purpose: the api hashes an edited item's text to tell the
embedder which text to embed (ItemEdited), and importing the stage module would load the stage runner
and its settings into the api. `item` is a row of the items table (the stages, on SQLAlchemy Core) or an
ORM Item (the API, reembed.py): only its attributes are read, and nothing here imports the ORM.
"""

from __future__ import annotations

import hashlib
from typing import Any


def embedding_text(item: Any) -> str:
    """What the vector stands for: every descriptive field, labelled, one per line."""
    lines = [
        item.title or "",
        item.description or "",
        f"Category: {item.category}" if item.category else "",
        f"Tags: {', '.join(item.tags)}" if item.tags else "",
        f"Colours: {', '.join(item.colors)}" if item.colors else "",
        f"Text in the image: {item.visible_text}" if item.visible_text else "",
    ]
    text = "\n".join(line for line in lines if line)
    return text or item.filename  # never empty: an item always has a filename


def text_sha256(item: Any) -> str:
    """Names the text an embedding stands for (ItemEdited carries it)."""
    return hashlib.sha256(embedding_text(item).encode()).hexdigest()
