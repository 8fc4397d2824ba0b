"""Feedback that clusters the same way every time with the fake embedder, and building themes from it."""

from __future__ import annotations

from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.themes.build import embed_pending, recluster
from core.types import ItemDraft

# Two obvious groups for the bag-of-words HashEmbedder: each text shares all but one word with its group.
CHECKOUT = [f"checkout payment card declined again at the till {word}"
            for word in ("monday", "tuesday", "wednesday", "thursday", "friday",
                         "saturday", "sunday", "morning", "evening", "tonight")]
LOGIN = [f"mobile app crashes on the login screen after update {word}"
         for word in ("iphone", "android", "tablet", "pixel", "galaxy",
                      "ipad", "oneplus", "xiaomi", "motorola", "nokia")]


def build_themes(loop: FeedbackLoop, texts: list[str] | None = None) -> None:
    """Ingest (when ``texts`` is given), embed and cluster, each step committed."""
    if texts:
        with loop.session() as session:
            ingest(loop, session, [ItemDraft(text=text) for text in texts])
    with loop.session() as session:
        embed_pending(loop, session)
    with loop.session() as session:
        recluster(loop, session)
