"""Seeded personal data never survives redaction, and ordinary text is left alone."""

from __future__ import annotations

import pytest

from plugins.redaction import redact

EMAILS = ["jane.doe@example.com", "J.Smith+billing@mail.example.co.uk", "x_y-z@sub.domain.org"]
PHONES = ["+44 20 7946 0958", "+1-202-555-0143", "(555) 123-4567", "555.123.4567", "07700 900123",
          "0049 30 901820", "+33 1 42 68 53 00", "020 7946 0958"]
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "340000000000009", "6011000990139424",
         "4000 0566 5566 5556"]
IBANS = ["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000", "fr1420041010050500013m02606",
         "NL91 ABNA 0417 1643 00"]


@pytest.mark.parametrize("secret", EMAILS + PHONES + CARDS + IBANS)
def test_seeded_personal_data_is_redacted(secret: str) -> None:
    text = f"Hi, it's me ({secret}). My card was charged twice, please call back on that!"
    redacted = redact(text)
    assert secret not in redacted
    digits = "".join(ch for ch in secret if ch.isdigit())
    assert not digits or digits not in "".join(ch for ch in redacted if ch.isdigit())
    assert "charged twice" in redacted


def test_every_kind_in_one_message() -> None:
    text = ("Email jane@example.com or call +44 20 7946 0958; card 4111111111111111, "
            "IBAN GB82 WEST 1234 5698 7654 32.")
    assert redact(text) == "Email [EMAIL] or call [PHONE]; card [CARD], IBAN [IBAN]."


@pytest.mark.parametrize("text", [
    "I was charged £25.50 on 2024-03-01 for order 12345.",
    "Why did my top-up of 100 EUR fail at 10:30?",
    "The app crashes on iOS 17.2 when I open the card tab.",
])
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_stored_and_listed_text_is_redacted(client, auth) -> None:  # type: ignore[no-untyped-def]
    body = {"text": "Refund to DE89370400440532013000 please, mail me at a.b@example.com or +1-202-555-0143",
            "author": "a.b@example.com"}
    assert client.post("/api/v1/feedback", json=body, headers=auth).status_code == 201
    listed = client.get("/api/v1/feedback", headers=auth).json()["items"][0]
    assert "DE89370400440532013000" not in listed["text"]
    assert "a.b@example.com" not in listed["text"] and "a.b@example.com" not in str(listed)
    assert "555-0143" not in listed["text"]


def test_a_thread_reference_keeps_its_long_ids_while_other_metadata_is_redacted() -> None:
    from core.types import ItemDraft
    from plugins.redaction import redact_item

    # 4111111111111111 passes the card check: as a thread id it is a reference, elsewhere it is a card.
    draft = ItemDraft(text="x", metadata={"thread": "conversation-4111111111111111",
                                          "note": "card 4111111111111111", "thread_owner": "jane@example.com"})
    redact_item(item=draft, settings=None)  # type: ignore[arg-type]
    assert draft.metadata["thread"] == "conversation-4111111111111111"
    assert "4111111111111111" not in draft.metadata["note"] and "jane" not in draft.metadata["thread_owner"]
    spoken = ItemDraft(text="x", metadata={"thread": "call me on jane@example.com"})
    redact_item(item=spoken, settings=None)  # type: ignore[arg-type]
    assert "jane@example.com" not in spoken.metadata["thread"]
