"""The public "you said, we did" page and its Atom feed: only published themes, only the product manager's
words, and none of the personal data that the items (or the product manager's own texts) held."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from core.auth.api_keys import create_api_key
from core.community.published import list_published, publish
from core.errors import Conflict
from core.intake.ingest import ingest
from core.loop import FeedbackLoop
from core.models import AuditEntry, FeedbackItem, Theme
from core.themes.review import merge_themes, update_theme
from core.types import ItemDraft
from plugins.redaction import redact
from tests.support.loops import make_loop
from tests.support.migrations import migrations
from tests.support.themes import build_themes
from tests.support.workspace import sign_in

EMAIL, PHONE, CARD = "jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111"
IBAN = "DE89 3704 0044 0532 0130 00"
AUTHORS = ("Jane Doe", "bob_smith", "Ærlig Kunde")
# Three groups the test embedder keeps apart; each item also carries personal data and an author.
GROUPS = {
    "checkout": [f"checkout payment declined again at the till {word} mail {EMAIL} card {CARD.replace(' ', '')}"
                 for word in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")],
    "login": [f"mobile app crashes on the login screen after update {word} phone {PHONE.replace(' ', '')}"
              for word in ("iphone", "android", "tablet", "pixel", "galaxy", "ipad", "nokia")],
    "export": [f"exporting reports to spreadsheet loses every column header {word} {IBAN.replace(' ', '')}"
               for word in ("csv", "xlsx", "numbers", "sheets", "libreoffice", "gnumeric", "calc")],
}
# What product managers type: their own words, and (pasted by mistake) personal data and authors' names.
SAID = f"Jane Doe and bob_smith ({EMAIL}, {PHONE}) said card {CARD} was refused; refund to {IBAN}."
DID = "We fixed the payment step; thanks Ærlig Kunde, and write to support at example dot com."


def seed(url: str) -> FeedbackLoop:
    loop = make_loop(url, public_page=True)
    drafts = [ItemDraft(text=text, author=AUTHORS[index % len(AUTHORS)], channel="forum")
              for texts in GROUPS.values() for index, text in enumerate(texts)]
    with loop.session() as session:
        ingest(loop, session, drafts)
    build_themes(loop)
    return loop


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[FeedbackLoop]:
    loop = seed(f"sqlite:///{tmp_path / 'public.db'}")
    yield loop
    loop.close()


@pytest.fixture
def seeded_any(database_url: str) -> Iterator[FeedbackLoop]:
    """The same on SQLite and PostgreSQL."""
    loop = seed(database_url)
    yield loop
    loop.close()


@pytest.fixture
def web(seeded: FeedbackLoop) -> Iterator[TestClient]:
    with TestClient(create_app(seeded.settings, loop=seeded), base_url="http://127.0.0.1") as client:
        yield client


def theme_of(loop: FeedbackLoop, word: str) -> Theme:
    with loop.session() as session:
        item_id = session.scalar(select(FeedbackItem.id).where(FeedbackItem.text_original.contains(word)))
        theme = session.scalar(select(Theme).join(Theme.memberships).where(
            Theme.memberships.any(item_id=item_id)))
        assert theme is not None, word
        return theme


def post_publish(web: TestClient, csrf: str | None, theme_id: int, title: str, said: str = SAID,
                 did: str = DID) -> httpx.Response:
    data = {"title": title, "you_said": said, "we_did": did} | ({"csrf_token": csrf} if csrf is not None else {})
    return web.post(f"/themes/{theme_id}/publish", data=data, follow_redirects=False)


def assert_nothing_personal(text: str, loop: FeedbackLoop, written: str | None = None) -> None:
    """No e-mail, phone, card, IBAN, author (name or pseudonym), item text or theme label in ``text``, and
    nothing the redaction would take out of what people wrote (``written``, by default all of ``text``;
    random ids and fractions of seconds can look like phone numbers to it)."""
    lowered = text.lower()
    for secret in (EMAIL, "example.com", "example dot com", "7946", "4111", "de89", "3704 0044", *AUTHORS):
        assert secret.lower() not in lowered, secret
    for author in AUTHORS:
        pseudonym = loop.pseudonyms.author(author)
        assert pseudonym and pseudonym not in lowered, author
    with loop.session() as session:
        for stored in session.scalars(select(FeedbackItem.author_pseudonym).distinct()):
            assert stored is None or stored not in lowered
        for label in session.scalars(select(Theme.label)):
            assert label.lower() not in lowered, label
    for texts in GROUPS.values():
        for item in texts:
            assert " ".join(item.split()[:6]) not in lowered
    written = text if written is None else written
    assert redact(written) == written  # nothing left that the redaction would take out


def test_the_page_and_feed_show_only_published_themes_and_no_personal_data(web: TestClient,
                                                                             seeded: FeedbackLoop) -> None:
    csrf = sign_in(web, seeded)
    shown, taken_down, ignored = (theme_of(seeded, word) for word in ("monday", "iphone", "xlsx"))
    assert len({shown.id, taken_down.id, ignored.id}) == 3
    for theme, title in ((shown, "Card payments work again"), (taken_down, "Taken down: marker-unpublished"),
                         (ignored, "Hidden: marker-ignored")):
        answer = post_publish(web, csrf, theme.id, title)
        assert answer.status_code == 303, answer.text
        assert "replaced" in answer.headers["location"]
    assert web.post(f"/themes/{taken_down.id}/unpublish", data={"csrf_token": csrf},
                    follow_redirects=False).status_code == 303
    with seeded.session() as session:
        update_theme(seeded, session, ignored.id, "user:pm@example.com", status="ignored")
    web.cookies.clear()  # the public page needs no sign-in

    page = web.get("/public")
    assert page.status_code == 200
    assert "Card payments work again" in page.text and "We fixed the payment step" in page.text
    assert "[EMAIL]" in page.text and "[PHONE]" in page.text and "[CARD]" in page.text and "[IBAN]" in page.text
    assert "[AUTHOR]" in page.text
    assert "marker-unpublished" not in page.text and "marker-ignored" not in page.text
    assert_nothing_personal(page.text, seeded)
    assert "csrf" not in page.text.lower() and "<form" not in page.text and "/signout" not in page.text
    assert 'href="/public/feed.atom"' in page.text

    feed = web.get("/public/feed.atom")
    assert feed.status_code == 200 and feed.headers["content-type"].startswith("application/atom+xml")
    parsed = feedparser.parse(feed.content)
    random_ids = re.compile(r"<id>urn:uuid:[0-9a-f-]{36}</id>")  # hex that may hold "4111" by chance
    assert_nothing_personal(random_ids.sub("", feed.text), seeded, written="\n".join(
        [parsed.feed.title] + [f"{entry.title}\n{entry.content[0].value}" for entry in parsed.entries]))
    assert "marker-unpublished" not in feed.text and "marker-ignored" not in feed.text
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "You said, we did" and parsed.feed.id == "http://127.0.0.1:8000/public"
    assert parsed.feed.updated_parsed is not None
    [entry] = parsed.entries
    assert entry.title == "Card payments work again" and entry.id.startswith("urn:uuid:")
    assert entry.updated_parsed is not None and entry.link.startswith("http://127.0.0.1:8000/public#entry-")
    assert "We did:" in entry.content[0].value and "[EMAIL]" in entry.content[0].value
    root = ET.fromstring(feed.content)  # the elements RFC 4287 requires, in the Atom namespace
    atom = "{http://www.w3.org/2005/Atom}"
    assert root.tag == f"{atom}feed" and root.find(f"{atom}author/{atom}name") is not None
    for required in ("id", "title", "updated", "content", "link"):
        assert root.find(f"{atom}entry/{atom}{required}") is not None, required


def test_unpublishing_removes_at_once_and_caches_must_ask_again(web: TestClient, seeded: FeedbackLoop) -> None:
    csrf = sign_in(web, seeded)
    theme = theme_of(seeded, "monday")
    post_publish(web, csrf, theme.id, "Payments fixed")
    first = web.get("/public")
    assert first.headers["cache-control"] == "public, no-cache" and first.headers["etag"]
    assert "last-modified" in first.headers
    assert first.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in first.headers[
        "content-security-policy"]
    again = web.get("/public", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and not again.content
    feed = web.get("/public/feed.atom")
    assert web.get("/public/feed.atom", headers={"If-None-Match": feed.headers["etag"]}).status_code == 304

    assert web.post(f"/themes/{theme.id}/unpublish", data={"csrf_token": csrf},
                    follow_redirects=False).status_code == 303
    after = web.get("/public", headers={"If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and "Payments fixed" not in after.text and "Nothing published yet" in after.text
    assert feedparser.parse(web.get("/public/feed.atom").content).entries == []
    with seeded.session() as session:
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.entity_type == "theme", AuditEntry.entity_id == str(theme.id)).order_by(AuditEntry.id)))
    assert actions[-2:] == ["publish", "unpublish"]


def test_publishing_again_updates_the_entry_and_the_theme_page_shows_it(web: TestClient,
                                                                        seeded: FeedbackLoop) -> None:
    csrf = sign_in(web, seeded)
    theme = theme_of(seeded, "monday")
    post_publish(web, csrf, theme.id, "First words", said="People asked for faster payments.", did="Faster.")
    answer = post_publish(web, csrf, theme.id, "Second words", said="People asked for faster payments.",
                          did="Much faster.")
    assert "updated" in answer.headers["location"] and "replaced" not in answer.headers["location"]
    page = web.get(f"/themes/{theme.id}")
    assert "Second words" in page.text and "Unpublish" in page.text and 'action="/themes/' in page.text
    with seeded.session() as session:
        [entry] = list_published(session)
        actions = list(session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == str(theme.id))))
    assert entry.title == "Second words" and entry.we_did == "Much faster."
    assert actions.count("publish") == 1 and actions.count("update_publication") == 1


def test_the_page_and_feed_are_not_found_when_the_setting_is_off(tmp_path: Path) -> None:
    loop = make_loop(f"sqlite:///{tmp_path / 'off.db'}")
    try:
        assert loop.settings.public_page is False
        with TestClient(create_app(loop.settings, loop=loop)) as client:
            for path in ("/public", "/public/feed.atom"):
                assert client.get(path).status_code == 404, path
    finally:
        loop.close()


def test_the_publish_form_refuses_viewers_missing_tokens_and_html(web: TestClient, seeded: FeedbackLoop) -> None:
    theme = theme_of(seeded, "monday")
    viewer_csrf = sign_in(web, seeded, email="viewer@example.com", role="viewer")
    assert post_publish(web, viewer_csrf, theme.id, "By a viewer").status_code == 403
    assert "/publish" not in web.get(f"/themes/{theme.id}").text
    csrf = sign_in(web, seeded)
    assert post_publish(web, None, theme.id, "No token").status_code == 403
    assert post_publish(web, "wrong", theme.id, "Wrong token").status_code == 403
    refused = post_publish(web, csrf, theme.id, "Bold", said="We <b>heard</b> you")
    assert refused.status_code == 422 and "plain text" in refused.text
    assert post_publish(web, csrf, theme.id, "   ").status_code == 422
    assert post_publish(web, csrf, theme.id, "x" * 201).status_code == 422
    assert web.post(f"/themes/{theme.id}/unpublish", data={"csrf_token": csrf}).status_code == 404
    assert post_publish(web, csrf, 999_999, "No theme").status_code == 404
    with seeded.session() as session:
        assert list_published(session) == []
        assert not list(session.scalars(select(AuditEntry).where(AuditEntry.action == "publish")))


def test_saved_texts_lose_invisible_characters_and_only_themes_people_see_are_published(
        seeded_any: FeedbackLoop) -> None:
    seeded, actor = seeded_any, "user:pm@example.com"
    checkout, login, export = (theme_of(seeded_any, word) for word in ("monday", "iphone", "xlsx"))
    with seeded.session() as session:
        done = publish(seeded, session, checkout.id, actor, title="Hello\u200b",
                       you_said="mail jane.doe\u200b@example.com", we_did="ok \x07done")
        assert done.entry.you_said == "mail [EMAIL]" and done.entry.we_did == "ok done" and done.altered
        assert done.entry.title == "Hello"
        update_theme(seeded, session, login.id, actor, status="ignored")
    with seeded.session() as session, pytest.raises(Conflict, match="ignored"):
        publish(seeded, session, login.id, actor, title="t", you_said="s", we_did="d")
    with seeded.session() as session:  # a merged theme keeps its entry, but is not published anew
        merge_themes(seeded, session, checkout.id, export.id, actor)
    with seeded.session() as session:
        assert [entry.title for entry in list_published(session)] == ["Hello"]
        with pytest.raises(Conflict, match="merged into"):
            publish(seeded, session, checkout.id, actor, title="t", you_said="s", we_did="d")


def test_the_migration_downgrades_and_upgrades(seeded_any: FeedbackLoop) -> None:
    seeded = seeded_any
    with migrations(seeded.engine) as schema:
        schema.down("0009")
        assert "published_themes" not in schema.tables()
        schema.up()
        assert "published_themes" in schema.tables()


def test_pseudonyms_typed_into_a_text_are_hidden(seeded_any: FeedbackLoop) -> None:
    seeded = seeded_any
    pseudonym = seeded.pseudonyms.author("bob_smith")
    assert pseudonym is not None
    with seeded.session() as session:
        done = publish(seeded, session, theme_of(seeded, "monday").id, "user:pm@example.com", title="Thanks",
                       you_said=f"Thanks to {pseudonym} and @BOB_SMITH.", we_did="Done.")
    assert re.fullmatch(r"Thanks to \[AUTHOR\] and @\[AUTHOR\]\.", done.entry.you_said)


def test_a_pseudonym_that_reads_as_a_phone_number_is_still_hidden(seeded: FeedbackLoop) -> None:
    from core.community.public_text import redact_text

    # An author whose pseudonym (hex, under this installation's key) the phone redaction would break up: a
    # few hundred names in, one opens with a long enough run of digits.
    name = next(f"customer {index}" for index in range(100_000)
                if redact_text(seeded, str(seeded.pseudonyms.author(f"customer {index}"))) !=
                seeded.pseudonyms.author(f"customer {index}"))
    pseudonym = seeded.pseudonyms.author(name)
    with seeded.session() as session:
        ingest(seeded, session, [ItemDraft(text="checkout is slow again today", author=name, channel="forum")])
        done = publish(seeded, session, theme_of(seeded, "monday").id, "user:pm@example.com", title="Thanks",
                       you_said=f"Thanks to {pseudonym}.", we_did="Done.")
    assert done.entry.you_said == "Thanks to [AUTHOR]."


def test_the_api_publishes_reads_and_takes_down_an_entry(web: TestClient, seeded: FeedbackLoop) -> None:
    theme_id = theme_of(seeded, "monday").id
    with seeded.session() as session:
        read_key = create_api_key(session, "reader", scopes=["read"])
        pm_key = create_api_key(session, "pm", scopes=["pm"])
    read, pm = ({"Authorization": f"Bearer {key}"} for key in (read_key, pm_key))
    url = f"/api/v1/themes/{theme_id}/publication"
    body = {"title": "Payments fixed", "you_said": SAID, "we_did": "Fixed."}
    assert web.put(url, json=body, headers=read).status_code == 403
    assert web.get(url, headers=read).status_code == 404
    saved = web.put(url, json=body, headers=pm)
    assert saved.status_code == 200 and saved.json()["created"] and saved.json()["altered"]
    # The texts only: the timestamps' fractions of seconds may hold "4111" by chance.
    assert_nothing_personal(" ".join(saved.json()[field] for field in body), seeded)
    assert web.get(url, headers=read).json()["title"] == "Payments fixed"
    assert "Payments fixed" in web.get("/public").text
    assert web.put(url, json={**body, "we_did": "<i>x</i>"}, headers=pm).status_code == 422
    assert web.put(url, json={**body, "extra": 1}, headers=pm).status_code == 422
    assert web.delete(url, headers=read).status_code == 403
    assert web.delete(url, headers=pm).status_code == 204
    assert web.delete(url, headers=pm).status_code == 404
    assert "Payments fixed" not in web.get("/public").text
    with seeded.session() as session:
        actors = set(session.scalars(select(AuditEntry.actor).where(AuditEntry.action.in_(("publish", "unpublish")))))
    assert actors == {"key:pm"}
