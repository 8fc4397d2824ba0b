"""The bundled demo: real customer feedback (Banking77 test set) and example ownership rules."""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from core.auth.users import add_user, find_user, set_password
from core.clock import utcnow
from core.intake.file_reader import ColumnMapping, drafts_from_file
from core.types import ItemDraft

DEMO_DIR = Path(__file__).parent
DEMO_FEEDBACK = DEMO_DIR / "banking77_test.csv"
DEMO_RULES = DEMO_DIR / "rules.toml"
DEMO_CHANNEL = "demo"


def demo_drafts() -> list[ItemDraft]:
    """The demo items, spread over the last four weeks so that themes have a history."""
    drafts = drafts_from_file(DEMO_FEEDBACK, ColumnMapping(text="text", metadata=("category",)), DEMO_CHANNEL)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for index, draft in enumerate(drafts):
        draft.external_id = f"banking77-test-{index}"
        draft.author = f"demo-customer-{index % 997}"
        draft.created_at = now - timedelta(hours=(index * 7919) % (28 * 24))
    return drafts


DEMO_ACCOUNT = "demo@feedbackloop.example"


def demo_account(session: Session) -> tuple[str, str]:
    """The demo's sign-in: an admin account made for the demo only, with a fresh password each run
    (printed by ``feedbackloop run --demo``). Never made outside the demo."""
    password = secrets.token_urlsafe(12)
    if find_user(session, DEMO_ACCOUNT) is None:
        add_user(session, DEMO_ACCOUNT, "admin", password=password, name="Demo PM")
    else:
        set_password(session, DEMO_ACCOUNT, password)
    return DEMO_ACCOUNT, password
