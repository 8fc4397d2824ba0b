"""The public "you said, we did" page (``/public``) and its Atom feed (``/public/feed.atom``), and the theme
page's form that publishes a theme to them.

The page and the feed need no sign-in and exist only with ``FEEDBACKLOOP_PUBLIC_PAGE=true`` (404
otherwise). They show the published entries only (core/community/published.py), in their own plain layout:
no workspace navigation, no session, no form. They may be cached, but every cache must ask again each
time (``no-cache``) with the ``ETag`` of the body, so an entry unpublished is gone at once. The ETag is the
only validator compared: ``Last-Modified`` is for information, since a theme ignored after publishing
hides its entry without a newer date. Publishing and unpublishing are the theme page's CSRF-checked
forms, for people who may change themes (and ``/api/v1/themes/{id}/publication``: api/routes/published.py).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from api.deps import LoopDep, SessionDep
from api.inputs import ThemeIdPath
from api.pages.common import CheckedForm, EditorUser, form_text, see_other, templates
from api.pages.public_feed import ATOM_MEDIA_TYPE, FeedInfo, atom_feed
from core.community.models_published import MAX_TEXT_CHARS, MAX_TITLE_CHARS
from core.community.published import (
    UNPUBLISHABLE_STATUSES,
    entry_for_theme,
    last_change,
    list_published,
    publish,
    unpublish,
)
from core.errors import NotFound
from core.loop import FeedbackLoop
from core.models import Theme

router = APIRouter(include_in_schema=False)
PAGE_PATH = "/public"
FEED_PATH = "/public/feed.atom"
PAGE_TITLE = "You said, we did"
FEED_AUTHOR = "The product team"
# Shared caches may keep the page, but must check it is still current before each use.
CACHE_CONTROL = "public, no-cache"


def _enabled(loop: FeedbackLoop) -> None:
    if not loop.settings.public_page:
        raise NotFound("there is no page here")


def _etag_matches(header: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names this ETag (weakly compared, as RFC 9110 asks for GET)."""
    if header is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _cacheable(request: Request, body: bytes, media_type: str, modified: datetime | None) -> Response:
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if modified is not None:
        headers["Last-Modified"] = format_datetime(modified, usegmt=True)
    if _etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


@router.get(PAGE_PATH)
def public_page(request: Request, loop: LoopDep, session: SessionDep) -> Response:
    _enabled(loop)
    entries = list_published(session)
    body = templates(request).get_template("public_page.html").render(
        {"entries": entries, "page_title": PAGE_TITLE}).encode("utf-8")
    return _cacheable(request, body, "text/html; charset=utf-8", last_change(session, entries))


@router.get(FEED_PATH)
def public_feed(request: Request, loop: LoopDep, session: SessionDep) -> Response:
    _enabled(loop)
    entries = list_published(session)
    base = loop.settings.public_url.rstrip("/")  # configured, never the request's Host header
    info = FeedInfo(title=PAGE_TITLE, author=FEED_AUTHOR, page_url=base + PAGE_PATH, feed_url=base + FEED_PATH)
    updated = last_change(session, entries)
    return _cacheable(request, atom_feed(info, entries, updated), f"{ATOM_MEDIA_TYPE}; charset=utf-8", updated)


def publication_context(loop: FeedbackLoop, session: Session, theme: Theme) -> dict[str, Any]:
    """What the theme page's "you said, we did" form shows (api/templates/public_publish_form.html)."""
    return {"publication": {"entry": entry_for_theme(session, theme.id), "page_on": loop.settings.public_page,
                            "publishable": theme.status not in UNPUBLISHABLE_STATUSES,
                            "max_title": MAX_TITLE_CHARS, "max_text": MAX_TEXT_CHARS}}


@router.post("/themes/{theme_id}/publish")
def publish_theme(theme_id: ThemeIdPath, current: EditorUser, session: SessionDep, loop: LoopDep,
                  form: CheckedForm) -> Response:
    done = publish(loop, session, theme_id, current.actor, title=form_text(form, "title"),
                   you_said=form_text(form, "you_said"), we_did=form_text(form, "we_did"))
    message = "Published on the public page." if done.created else "The public entry is updated."
    if done.altered:
        message += " Personal data or authors' names were replaced: check the wording below."
    return see_other(f"/themes/{theme_id}?{urlencode([('done', message)])}#publish-h")


@router.post("/themes/{theme_id}/unpublish")
def unpublish_theme(theme_id: ThemeIdPath, current: EditorUser, session: SessionDep,
                    _form: CheckedForm) -> Response:
    unpublish(session, theme_id, current.actor)
    return see_other(f"/themes/{theme_id}?{urlencode([('done', 'Taken off the public page.')])}")
