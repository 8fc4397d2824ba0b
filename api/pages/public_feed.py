"""The public entries as an Atom 1.0 feed (RFC 4287), built with xml.etree: every text is escaped by it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from core.community.published import PublicEntry

ATOM_NS = "http://www.w3.org/2005/Atom"
ATOM_MEDIA_TYPE = "application/atom+xml"
# A feed needs an "updated" even before anything was published: the start of the epoch says "never".
NEVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FeedInfo:
    """What the feed says about itself: its title, author, and its page's and its own address."""

    title: str
    author: str
    page_url: str
    feed_url: str


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    element.text = text
    return element


def entry_text(entry: PublicEntry) -> str:
    return f"You said:\n{entry.you_said}\n\nWe did:\n{entry.we_did}"


def atom_feed(info: FeedInfo, entries: Sequence[PublicEntry], updated: datetime | None) -> bytes:
    """The feed document, UTF-8, with an XML declaration."""
    # Unprefixed names under a default namespace declared on the root (ElementTree's default_namespace option
    # refuses the unqualified attributes Atom uses).
    feed = ET.Element("feed", xmlns=ATOM_NS)
    _add(feed, "id", info.page_url)
    _add(feed, "title", info.title)
    _add(feed, "updated", _timestamp(updated or NEVER))
    _add(_add(feed, "author"), "name", info.author)
    _add(feed, "link", rel="self", type=ATOM_MEDIA_TYPE, href=info.feed_url)
    _add(feed, "link", rel="alternate", type="text/html", href=info.page_url)
    for entry in entries:
        element = _add(feed, "entry")
        _add(element, "id", f"urn:uuid:{entry.entry_uuid}")
        _add(element, "title", entry.title, type="text")
        _add(element, "published", _timestamp(entry.published_at))
        _add(element, "updated", _timestamp(entry.updated_at))
        _add(element, "link", rel="alternate", type="text/html", href=f"{info.page_url}#entry-{entry.entry_id}")
        _add(element, "content", entry_text(entry), type="text")
    document: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return document
