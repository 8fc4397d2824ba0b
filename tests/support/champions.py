"""A community for the champions tests (tests/test_champions.py, tests/test_champion_pages.py): a channel type
that answers in its threads, a conversation whose ranking is worked out by hand, and one theme of it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core import hookimpl
from core.intake.channels import add_channel
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, Theme, ThemeMembership
from core.types import ChannelType, IntakeResult, ItemDraft, ReplyRequest, StoredItem, ThreadReplies
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# (author, thread, opens the thread, staff): in this order, a minute apart. Worked out by hand:
#   alice  4 posts, 1 reply received (erin's, in room-1), first at 1  -> ranks 1, 2, 2 = 5
#   dave   1 post,  1 reply received (alice's, in room-0), first at 0 -> ranks 3, 2, 1 = 6
#   bob    1 post,  3 replies received (room-2),           first at 2 -> ranks 3, 1, 3 = 7
#   carol  2 posts, 0 replies,                             first at 4 -> ranks 2, 4, 4 = 10
#   erin is staff and nobody (None) wrote without an author: neither is a champion.
CONVERSATION: list[tuple[str | None, str, bool, bool]] = [
    ("dave", "room-0", True, False), ("alice", "room-1", True, False), ("bob", "room-2", True, False),
    ("alice", "room-2", False, False), ("carol", "room-2", False, False), ("carol", "room-2", False, False),
    ("alice", "room-1", False, False), ("erin", "room-1", False, True), (None, "room-2", False, False),
    ("alice", "room-0", False, False),
]


class Rooms:
    """A channel type that answers in its own threads, named by the ``thread`` metadata convention."""

    def __init__(self) -> None:
        self.posted: list[ReplyRequest] = []
        self.failures = 0
        # The opening posts of CONVERSATION's threads (how a forum names them by their opener).
        self.openers = {"room-0": "m0", "room-1": "m1", "room-2": "m2"}

    def thread_of(self, item: StoredItem) -> str | None:
        thread = item.metadata.get("thread")
        return str(thread) if thread else None

    def post(self, request: ReplyRequest) -> str:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the forum did not answer")
        self.posted.append(request)
        return f"answer-{len(self.posted)}"

    @hookimpl
    def register_channel_types(self, register: Any) -> None:
        register(ChannelType(name="rooms", description="Rooms", handle_webhook=lambda _r: IntakeResult(),
                             replies=ThreadReplies(thread_of=self.thread_of, post=self.post,
                                                   opener_id=self.openers.get)))


def drafts(channel: str, conversation: Sequence[tuple[str | None, str, bool, bool]], start: datetime = START,
           prefix: str = "m") -> list[ItemDraft]:
    return [ItemDraft(text=f"dark mode for the mobile app please, night reading hurts ({prefix}{n})", channel=channel,
                      external_id=f"{prefix}{n}", author=author, created_at=start + timedelta(minutes=n),
                      metadata={"thread": thread, "opens_thread": opens, **({"staff": True} if staff else {})})
            for n, (author, thread, opens, staff) in enumerate(conversation)]


def themed(loop: FeedbackLoop, items: list[ItemDraft], label: str = "Dark mode on mobile") -> int:
    """Store the items and make one theme of everything stored (memberships as a clustering writes them)."""
    with loop.session() as session:
        ingest(loop, session, items)
    with loop.session() as session:
        theme = session.scalar(select(Theme).where(Theme.label == label))
        if theme is None:
            theme = Theme(label=label, keywords=["dark", "mode"], quotes=[])
            session.add(theme)
            session.flush()
        members = set(session.scalars(select(ThemeMembership.item_id)))
        for item_id in session.scalars(select(FeedbackItem.id)):
            if item_id not in members:
                session.add(ThemeMembership(item_id=item_id, theme_id=theme.id, source="machine", score=0.9))
        return theme.id


def pseudonym(loop: FeedbackLoop, name: str) -> str:
    found = loop.pseudonyms.author(name)
    assert found is not None
    return found


@pytest.fixture
def rooms() -> Rooms:
    return Rooms()


@pytest.fixture
def community(tmp_path: Path, rooms: Rooms) -> Iterator[tuple[FeedbackLoop, int]]:
    """A loop with a replying channel ("chat", of type rooms) and one theme of the conversation above."""
    loop = make_loop(f"sqlite:///{tmp_path / 'champions.db'}")
    loop.pm.register(rooms, name="rooms-plugin")
    with loop.session() as session:
        add_channel(loop, session, "chat", "rooms")
    yield loop, themed(loop, drafts("chat", CONVERSATION))
    loop.close()


@pytest.fixture
def api(community: tuple[FeedbackLoop, int]) -> Iterator[TestClient]:
    loop, _ = community
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        yield client


def audit(loop: FeedbackLoop, action: str) -> list[AuditEntry]:
    with loop.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))
