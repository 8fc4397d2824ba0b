"""The key under which a text's embedding is reused: equal for texts the embedder cannot tell apart.

Normalisation: Unicode NFKC (compatibility forms such as full-width letters and ligatures become their plain
letters), then ``str.casefold`` (the bundled MiniLM is uncased: its tokenizer lower-cases anyway), then every
run of whitespace becomes one space and the ends are stripped (the tokenizer splits on whitespace, so the runs
never reach the model). What is embedded stays the item's own text; the hash only decides that two texts
share one vector. Not keyed: the text itself is stored beside it, so the hash reveals nothing more.
"""

from __future__ import annotations

import hashlib
import unicodedata


def normalised_text(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def text_hash(text: str) -> str:
    """Hex SHA-256 of the normalised text (64 characters)."""
    return hashlib.sha256(normalised_text(text).encode("utf-8")).hexdigest()
