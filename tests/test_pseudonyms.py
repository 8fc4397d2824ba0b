"""Keyed pseudonyms (issue 14, fault 8): no id or hash anyone could recompute from a guessed author and text,
and the key kept out of the database, made on first start with owner-only permissions, moved out of the
database on upgrade, and refused when a machine's key is not the database's."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.db import make_engine, make_session_factory, migrate, session_scope
from core.intake.erasure import forget_author
from core.intake.ingest import draft_row, ingest
from core.intake.pseudonyms import CHECK_ROW, LEGACY_KEY_ROW, PseudonymKeyError, key_file, write_key_file
from core.loop import FeedbackLoop
from core.models import FeedbackItem, ItemSighting, Setting
from core.types import ItemDraft
from tests.support.env import ADMIN_KEY
from tests.support.loops import make_loop

AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
LEGACY_KEY = bytes(range(32))


def legacy_content_id(author: str, text: str) -> str:
    """The id earlier versions gave items without one: anyone who guesses author and text can make it."""
    basis = f"{author.strip().lower()}\n{' '.join(text.split()).lower()}"
    return "sha1:" + hashlib.sha1(basis.encode()).hexdigest()


def legacy_author(author: str) -> str:
    return hmac.new(LEGACY_KEY, author.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]


def settings_values(loop: FeedbackLoop) -> dict[str, str]:
    with loop.session() as session:
        return {row.key: row.value for row in session.scalars(select(Setting))}


def test_an_item_without_id_gets_a_keyed_id_the_api_cannot_be_matched_against(loop: FeedbackLoop) -> None:
    with TestClient(create_app(loop.settings, loop=loop)) as client:
        sent = client.post("/api/v1/feedback", json={"text": "Refund  took three weeks", "author": "Jane Doe"},
                           headers=AUTH)
        assert sent.status_code == 201
        [item] = client.get("/api/v1/feedback", headers=AUTH).json()["items"]
    guessed = legacy_content_id("Jane Doe", "Refund  took three weeks")
    assert item["external_id"] != guessed and guessed[5:] not in item["external_id"]
    assert item["external_id"] == loop.pseudonyms.content_id(loop.pseudonyms.author("Jane Doe"),
                                                             "refund took three weeks")
    with loop.session() as session:
        stored = session.scalars(select(FeedbackItem)).one()
    plain_hash = hashlib.sha256(f"{stored.author_pseudonym}\nrefund took three weeks".encode()).hexdigest()
    assert stored.content_hash not in (None, plain_hash)


def test_two_installations_make_different_pseudonyms_and_ids(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = make_loop(f"sqlite:///{tmp_path / 'one' / 'fb.db'}", secrets_dir=tmp_path / "one")
    two = make_loop(f"sqlite:///{tmp_path / 'two' / 'fb.db'}", secrets_dir=tmp_path / "two")
    try:
        assert one.pseudonyms.author("jane") != two.pseudonyms.author("jane")
        assert one.pseudonyms.content_id(None, "hi") != two.pseudonyms.content_id(None, "hi")
    finally:
        one.close()
        two.close()


def test_the_key_lives_in_an_owner_only_file_made_on_first_start_not_in_the_database(any_loop: FeedbackLoop) -> None:
    with any_loop.session() as session:
        ingest(any_loop, session, [ItemDraft(text="slow sync", author="ana")])
    path = key_file(any_loop.settings)
    key_hex = path.read_text().strip()
    assert bytes.fromhex(key_hex) == any_loop.pseudonyms.key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    values = settings_values(any_loop)
    assert LEGACY_KEY_ROW not in values and not any(key_hex in value for value in values.values())
    assert CHECK_ROW in values  # a check value only: an HMAC of a fixed label


def test_default_key_file_sits_beside_the_sqlite_database(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    loop = make_loop(f"sqlite:///{tmp_path / 'data' / 'fb.db'}", secrets_dir=None)
    try:
        assert key_file(loop.settings) == tmp_path / "data" / ".feedbackloop" / "pseudonym_key"
        assert key_file(loop.settings).is_file()
    finally:
        loop.close()


def test_a_key_from_the_environment_writes_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDBACKLOOP_PSEUDONYM_KEY", "ab" * 32)
    loop = make_loop(f"sqlite:///{tmp_path / 'env.db'}")
    try:
        assert loop.pseudonyms.key == bytes.fromhex("ab" * 32)
        assert not key_file(loop.settings).exists()
    finally:
        loop.close()


def test_a_malformed_key_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError, match="64 hexadecimal"):
        make_loop(f"sqlite:///{tmp_path / 'bad.db'}", pseudonym_key="short")


def test_a_machine_with_another_key_refuses_to_start_and_makes_none(database_url: str, tmp_path: Path) -> None:
    first = make_loop(database_url, secrets_dir=tmp_path / "machine-a")
    first.close()
    with pytest.raises(PseudonymKeyError, match="copy the key file"):
        make_loop(database_url, secrets_dir=tmp_path / "machine-b")
    assert not (tmp_path / "machine-b" / "pseudonym_key").exists()
    with pytest.raises(PseudonymKeyError, match="same key"):
        make_loop(database_url, secrets_dir=tmp_path / "machine-c", pseudonym_key="cd" * 32)
    shared = make_loop(database_url, secrets_dir=tmp_path / "machine-d",
                       pseudonym_key=(tmp_path / "machine-a" / "pseudonym_key").read_text().strip())
    shared.close()


def test_creating_can_be_switched_off(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError, match="PSEUDONYM_KEY_CREATE"):
        make_loop(f"sqlite:///{tmp_path / 'off.db'}", pseudonym_key_create=False)


def test_a_key_file_written_twice_keeps_the_first_key(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "pseudonym_key"
    assert write_key_file(path, b"\x01" * 32) == b"\x01" * 32
    assert write_key_file(path, b"\x02" * 32) == b"\x01" * 32
    assert os.listdir(path.parent) == ["pseudonym_key"]  # no temporary file left behind


def test_the_key_is_read_once_per_loop(loop: FeedbackLoop) -> None:
    key_file(loop.settings).unlink()  # gone after start: the running loop still has its key
    with loop.session() as session:
        report = ingest(loop, session, [ItemDraft(text=f"item {n}", author="ana") for n in range(3)])
    assert report.created == 3


def seed_legacy_installation(url: str) -> None:
    """A database as earlier versions left it: the key in installation_settings, unkeyed ids and hashes."""
    engine = make_engine(url)
    migrate(engine)
    with session_scope(make_session_factory(engine)) as session:
        session.add(Setting(key=LEGACY_KEY_ROW, value=LEGACY_KEY.hex()))
        text = "The export button  does nothing"
        pseudonym = legacy_author("Jane")
        digest = hashlib.sha256(f"{pseudonym}\n{text.lower()}".encode()).hexdigest()
        session.add(FeedbackItem(**draft_row(ItemDraft(text=text), "api", legacy_content_id("Jane", text),
                                             pseudonym, digest)))
    engine.dispose()


def test_upgrade_moves_the_database_key_out_and_keeps_pseudonyms(database_url: str, tmp_path: Path) -> None:
    seed_legacy_installation(database_url)
    loop = make_loop(database_url, secrets_dir=tmp_path / "secrets")
    try:
        assert (tmp_path / "secrets" / "pseudonym_key").read_text().strip() == LEGACY_KEY.hex()
        assert LEGACY_KEY_ROW not in settings_values(loop)
        assert loop.pseudonyms.author("Jane") == legacy_author("Jane")  # existing pseudonyms stay stable
        with loop.session() as session:
            item = session.scalars(select(FeedbackItem)).one()
            assert item.external_id.startswith("cid:")  # the guessable id is gone from the database
            again = ingest(loop, session, [ItemDraft(text="The export button  does nothing", author=" jane")])
            elsewhere = ingest(loop, session, [ItemDraft(text="The export button does nothing", author="Jane",
                                                         channel="forum", external_id="p-1")])
        assert (again.duplicates, elsewhere.linked) == (1, 1)  # re-sent: the same item; elsewhere: a sighting
        with loop.session() as session:
            assert forget_author(session, "JANE", pseudonyms=loop.pseudonyms).items == 1
            assert session.scalars(select(ItemSighting)).all() == []
    finally:
        loop.close()


def test_upgrade_refuses_a_configured_key_that_is_not_the_databases(database_url: str, tmp_path: Path) -> None:
    seed_legacy_installation(database_url)
    with pytest.raises(PseudonymKeyError, match="not the one"):
        make_loop(database_url, secrets_dir=tmp_path / "secrets", pseudonym_key="ef" * 32)
