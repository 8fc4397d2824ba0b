"""The workspace's query layer: the themes overview (ranked, filtered, searched, sorted, paged, linked)
and a theme's page (timeline, channel mix, items, tickets, history), on hand-made data at a fixed time;
and the SVG charts drawn from them."""

from __future__ import annotations

import math
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.pages.charts import sparkline_svg, timeline_svg
from core.db import make_engine, make_session_factory, migrate
from core.errors import InvalidInput, NotFound
from core.models import AuditEntry, Delivery, FeedbackItem, Owner, Theme, ThemeMembership
from core.themes.overview import overview
from core.themes.overview_filter import OverviewFilter, filter_from_query, filter_to_query
from core.themes.signals import spike_score
from core.themes.timeline import (
    TimelineBucket,
    channel_mix,
    theme_history,
    theme_items,
    theme_tickets,
    theme_timeline,
)

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)  # a Tuesday
STEP_DAYS = 30 / 8  # one sparkline bucket of the default 30-day window


def bucket_age(bucket: int) -> float:
    """Days before NOW of the middle of sparkline bucket ``bucket`` (0 oldest, 7 newest) of the 30d window."""
    return 30 - (bucket + 0.5) * STEP_DAYS


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


class Seeder:
    def __init__(self, session: Session) -> None:
        self.session = session

    def theme(self, label: str, status: str = "new", owner: Owner | None = None,
              keywords: tuple[str, ...] = ()) -> Theme:
        theme = Theme(label=label, status=status, owner_id=owner.id if owner else None, keywords=list(keywords))
        self.session.add(theme)
        self.session.flush()
        return theme

    def items(self, theme: Theme | None, ages_days: list[float], channel: str = "zendesk", kind: str | None = "bug",
              sentiment: float | None = 0.0, text: str = "something about it", tier: str | None = None,
              value: float | None = None) -> list[FeedbackItem]:
        made = []
        for age in ages_days:
            item = FeedbackItem(channel=channel, external_id=uuid.uuid4().hex, text_original=f"ORIGINAL {text}",
                                text_redacted=text, created_at=NOW - timedelta(days=age), kind=kind,
                                sentiment=sentiment, customer_tier=tier, account_value=value)
            self.session.add(item)
            made.append(item)
        self.session.flush()
        if theme is not None:
            self.session.add_all([ThemeMembership(item_id=item.id, theme_id=theme.id) for item in made])
            self.session.flush()
        return made


@pytest.fixture
def seeded(factory: sessionmaker[Session]) -> dict[str, int]:
    """Four themes (one archived), a few unthemed items; returns names -> ids."""
    with factory() as session, session.begin():
        seed = Seeder(session)
        payments, mobile = Owner(name="payments"), Owner(name="mobile")
        session.add_all([payments, mobile])
        session.flush()
        refund = seed.theme("Refund delays", owner=payments, keywords=("refund", "delay"))
        # Sparkline [0, 0, 1, 0, 0, 2, 0, 5]: six from zendesk, two from github; three in the windows before.
        seed.items(refund, [bucket_age(2), bucket_age(5), bucket_age(5), bucket_age(7), bucket_age(7),
                            bucket_age(7)], sentiment=-0.5, text="my refund is late")
        seed.items(refund, [bucket_age(7), bucket_age(7)], channel="github", sentiment=-0.5,
                   text="Refund takes weeks", tier="enterprise", value=1000.0)
        seed.items(refund, [40, 60, 100, 400], sentiment=-0.5)  # 400 days: older than any look-back
        dark = seed.theme("Dark mode", status="planned", keywords=("dark", "theme"))
        seed.items(dark, [bucket_age(1), bucket_age(3), bucket_age(5), bucket_age(6)], channel="github",
                   kind="feature_request", sentiment=0.5, text="please add 50 percent darker colours or switch off")
        seed.items(dark, [35 + n for n in range(12)], channel="github", kind="feature_request", sentiment=0.5)
        crash = seed.theme("Login crash", status="archived")
        seed.items(crash, [1, 2])
        export = seed.theme("Export CSV", status="done", owner=mobile)
        seed.items(export, [bucket_age(4)], kind="question", sentiment=None, text="export gives 50%_off prices")
        seed.items(None, [1, 20])
        return {"refund": refund.id, "dark": dark.id, "crash": crash.id, "export": export.id,
                "payments": payments.id, "mobile": mobile.id}


def page_for(factory: sessionmaker[Session], **fields: object) -> tuple[list[int], dict[int, object]]:
    with factory() as session:
        result = overview(session, OverviewFilter(**fields), now=NOW)  # type: ignore[arg-type]
    return [row.id for row in result.rows], {row.id: row for row in result.rows}


def test_overview_counts_sparkline_trend_spike_and_impact(factory: sessionmaker[Session],
                                                          seeded: dict[str, int]) -> None:
    with factory() as session:
        page = overview(session, OverviewFilter(), now=NOW)
    rows = {row.id: row for row in page.rows}
    refund = rows[seeded["refund"]]
    assert refund.sparkline == [0, 0, 1, 0, 0, 2, 0, 5]
    assert refund.volume == 8
    assert page.total_items == 8 + 4 + 2 + 1 + 2  # the archived theme's and unthemed items count too
    assert refund.share_of_voice == pytest.approx(8 / 17)
    assert refund.trend == pytest.approx((8 + 1) / (3 / 3 + 1))  # three items in the 90 days before
    assert refund.spike_score == pytest.approx(spike_score(5, (3 + 8 - 5) / 31))
    assert refund.mean_sentiment == pytest.approx(-0.5)
    assert (refund.impact, refund.tiered_items) == (2000.0, 2)
    assert refund.channels == [("zendesk", 6), ("github", 2)]
    assert (refund.owner, refund.status, refund.label) == ("payments", "new", "Refund delays")
    dark = rows[seeded["dark"]]
    assert dark.sparkline == [0, 1, 0, 1, 0, 1, 1, 0]
    assert dark.trend == pytest.approx((4 + 1) / (12 / 3 + 1))  # steady: as many as in the windows before
    assert rows[seeded["export"]].mean_sentiment is None
    # Attention: the spiking, unhappy, valuable theme first; the shrinking one gets no trend points.
    assert page.rows[0].id == seeded["refund"]
    assert refund.attention > dark.attention > 0
    assert page.bucket_starts[0] == NOW - timedelta(days=30) and len(page.bucket_starts) == 8
    assert page.counts["status"] == {"archived": 1, "done": 1, "new": 1, "planned": 1}
    assert page.counts["channel"] == {"github": 18, "zendesk": 15}
    assert page.counts["kind"]["feature_request"] == 16


def test_status_owner_channel_kind_and_window_filters(factory: sessionmaker[Session],
                                                      seeded: dict[str, int]) -> None:
    ids, _ = page_for(factory)
    assert set(ids) == {seeded["refund"], seeded["dark"], seeded["export"]}  # archived themes are left out
    assert page_for(factory, statuses=("archived",))[0] == [seeded["crash"]]
    assert set(page_for(factory, statuses=("done", "planned"))[0]) == {seeded["dark"], seeded["export"]}
    assert page_for(factory, owner=seeded["payments"])[0] == [seeded["refund"]]
    assert page_for(factory, owner="none")[0] == [seeded["dark"]]
    ids, rows = page_for(factory, channel="github", sort="volume")
    assert ids == [seeded["dark"], seeded["refund"]]  # export has no github item in the window
    assert rows[seeded["refund"]].volume == 2  # type: ignore[attr-defined]
    assert page_for(factory, kind="question")[0] == [seeded["export"]]
    _, rows = page_for(factory, window="7d")
    assert rows[seeded["refund"]].volume == 5  # type: ignore[attr-defined]
    with factory() as session:
        every = overview(session, OverviewFilter(window="all"), now=NOW)
    rows = {row.id: row for row in every.rows}
    assert rows[seeded["refund"]].volume == 12 and rows[seeded["dark"]].volume == 16
    assert every.total_items == 12 + 16 + 2 + 1 + 2
    # "all" takes its signals from the last 90 days: ten items there, one in the 270 days before.
    assert rows[seeded["refund"]].trend == pytest.approx((10 + 1) / (1 / 3 + 1))
    assert sum(rows[seeded["refund"]].sparkline) == 10 and every.bucket_starts[0] == NOW - timedelta(days=90)
    assert rows[seeded["refund"]].mean_sentiment == pytest.approx(-0.5)
    _, rows = page_for(factory, window="90d")
    assert rows[seeded["refund"]].volume == 10  # type: ignore[attr-defined]


def test_search_matches_labels_keywords_and_item_text(factory: sessionmaker[Session],
                                                     seeded: dict[str, int]) -> None:
    assert page_for(factory, search="REFUND")[0] == [seeded["refund"]]  # label, any case
    assert page_for(factory, search="theme")[0] == [seeded["dark"]]  # a keyword
    assert page_for(factory, search="darker")[0] == [seeded["dark"]]  # an item's redacted text
    assert page_for(factory, search="weeks")[0] == [seeded["refund"]]
    assert page_for(factory, search="50%_off")[0] == [seeded["export"]]  # % and _ are not wildcards
    assert page_for(factory, search="original")[0] == []  # the original text is never searched
    assert page_for(factory, search="login", statuses=("archived",))[0] == [seeded["crash"]]


def test_sort_orders_and_paging(factory: sessionmaker[Session], seeded: dict[str, int]) -> None:
    refund, dark, export = seeded["refund"], seeded["dark"], seeded["export"]
    assert page_for(factory, sort="volume")[0] == [refund, dark, export]
    assert page_for(factory, sort="volume", order="asc")[0] == [export, dark, refund]
    assert page_for(factory, sort="label")[0] == [dark, export, refund]
    assert page_for(factory, sort="label", order="desc")[0] == [refund, export, dark]
    assert page_for(factory, sort="sentiment")[0] == [refund, dark, export]  # no sentiment: last
    assert page_for(factory, sort="sentiment", order="desc")[0] == [dark, refund, export]
    assert page_for(factory, sort="impact")[0][0] == refund
    assert page_for(factory, sort="spike")[0][0] == refund
    assert page_for(factory, sort="trend")[0] == [refund, export, dark]  # 4.5, 2.0, 1.0
    with factory() as session:
        second = overview(session, OverviewFilter(sort="volume", per_page=1, page=2), now=NOW)
        beyond = overview(session, OverviewFilter(sort="volume", per_page=2, page=5), now=NOW)
        third = overview(session, OverviewFilter(sort="volume", per_page=1, page=3), now=NOW)
    assert [row.id for row in second.rows] == [dark] and (second.total, second.pages) == (3, 3)
    # A page of small themes reads their items through the theme index; its mix is the same.
    assert third.rows[0].channels == [("zendesk", 1)]
    assert second.rows[0].channels == [("github", 4)]
    assert beyond.rows == [] and beyond.total == 3


def test_an_empty_database_has_an_empty_overview(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        page = overview(session, OverviewFilter(search="x", window="all"))
    assert (page.rows, page.total, page.total_items, page.pages) == ([], 0, 0, 1)
    assert page.counts == {"channel": {}, "kind": {}, "status": {}}


def test_query_string_round_trip() -> None:
    full = OverviewFilter(statuses=("triaged", "new"), owner=7, channel="github", kind="bug", window="7d",
                          search="dark mode & more", sort="spike", order="asc", page=3, per_page=25)
    query = filter_to_query(full)
    assert query.startswith("q=dark+mode+%26+more&status=new&status=triaged&owner=7")
    assert filter_from_query(query) == full == filter_from_query("?" + full.to_query())
    assert filter_to_query(OverviewFilter()) == ""
    assert filter_from_query("") == OverviewFilter()
    assert filter_from_query("owner=none").owner == "none"
    # An HTML form sends its empty fields: they mean "no filter".
    assert filter_from_query("q=&status=&channel=&kind=&owner=&window=&sort=") == OverviewFilter()
    # Starlette's query_params.multi_items() and a plain mapping work as well.
    assert filter_from_query([("status", "new"), ("status", "done")]).statuses == ("done", "new")
    assert filter_from_query({"status": ["new"], "page": "2"}) == OverviewFilter(statuses=("new",), page=2)
    assert filter_from_query("embed=1&page=2", ignore=("embed",)).page == 2
    # Changing a filter goes back to page 1; changing the page keeps everything else.
    assert full.with_changes(sort="volume").page == 1
    assert full.with_changes(page=4) == OverviewFilter(**{**full.__dict__, "page": 4})


@pytest.mark.parametrize(("query", "names"), [
    ("window=1y", "window"), ("sort=bogus", "sort"), ("order=up", "order"), ("page=0", "page"),
    ("page=-1", "page"), ("page=abc", "page"), ("page=1.5", "page"), ("per_page=1000", "per_page"),
    ("per_page=0", "per_page"), ("status=nope", "status"), ("owner=abc", "owner"), ("owner=0", "owner"),
    ("bogus=1", "bogus"), ("page=1&page=2", "page"), ("q=" + "x" * 201, "search"), ("channel=" + "c" * 129, "channel"),
    ("page=99999999999", "page"), ("q=a%00b", "search"), ("channel=a%00", "channel"),
])
def test_bad_query_values_are_refused_with_a_clear_message(query: str, names: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        filter_from_query(query)
    assert names in refused.value.message
    assert refused.value.status_code == 422


def test_filter_checks_its_fields_when_built_directly() -> None:
    with pytest.raises(InvalidInput, match="window"):
        OverviewFilter(window="2d")
    with pytest.raises(InvalidInput, match="owner"):
        OverviewFilter(owner=True)  # type: ignore[arg-type]
    assert OverviewFilter(search="  padded  ").search == "padded"


def test_timeline_buckets_and_mean_sentiment(factory: sessionmaker[Session], seeded: dict[str, int]) -> None:
    with factory() as session, session.begin():
        seed = Seeder(session)
        theme = seed.theme("Timeline")
        seed.items(theme, [0.1, 0.2], sentiment=-1.0)  # today (NOW is 12:00, so both fall on 30 June)
        seed.items(theme, [0.3], sentiment=0.5)
        seed.items(theme, [1.0], sentiment=None)  # yesterday, no sentiment
        seed.items(theme, [89.4])  # 2 April 2026 at 02:24: the first day bucket of 90
        seed.items(theme, [95.0])  # before the timeline
        theme_id = theme.id
    with factory() as session:
        days = theme_timeline(session, theme_id, grain="day", now=NOW)
        weeks = theme_timeline(session, theme_id, grain="week", now=NOW)
        short = theme_timeline(session, theme_id, grain="day", now=NOW, buckets=3)
        naive = theme_timeline(session, theme_id, grain="day", now=NOW.replace(tzinfo=None))  # read as UTC
        page = overview(session, OverviewFilter(), now=NOW.replace(tzinfo=None))
    assert naive == days and page.bucket_starts[0] == NOW - timedelta(days=30)
    assert len(days) == 90
    assert days[-1].start == datetime(2026, 6, 30, tzinfo=UTC) and days[0].start == datetime(2026, 4, 2, tzinfo=UTC)
    assert days[-1].volume == 3 and days[-1].mean_sentiment == pytest.approx(-0.5)
    assert days[-2].volume == 1 and days[-2].mean_sentiment is None
    assert days[0].volume == 1 and sum(bucket.volume for bucket in days) == 5
    assert len(weeks) == 26 and weeks[-1].start == datetime(2026, 6, 29, tzinfo=UTC)  # a Monday
    assert weeks[-1].volume == 4 and all(bucket.start.weekday() == 0 for bucket in weeks)
    assert [bucket.volume for bucket in short] == [0, 1, 3]


def test_theme_page_queries(factory: sessionmaker[Session], seeded: dict[str, int]) -> None:
    refund = seeded["refund"]
    with factory() as session, session.begin():
        undo_entry = AuditEntry(actor="user:pm@example.com", action="undo", entity_type="audit_entry", entity_id="1",
                                details={}, at=NOW - timedelta(days=1))
        session.add(undo_entry)
        session.flush()
        session.add_all([
            Delivery(theme_id=refund, target_type="jira", idempotency_key="jira:1", state="delivered",
                     external_ref="PAY-12", url="https://jira.example/PAY-12", external_status="In Progress"),
            AuditEntry(actor="user:pm@example.com", action="set_status", entity_type="theme",
                       entity_id=str(refund), details={"from": "new", "to": "triaged"},
                       at=NOW - timedelta(hours=2), undone_by_id=undo_entry.id),
            AuditEntry(actor="user:pm@example.com", action="merge", entity_type="theme",
                       entity_id=str(seeded["crash"]), details={"into": refund}, at=NOW - timedelta(hours=1)),
            AuditEntry(actor="user:pm@example.com", action="rename", entity_type="theme",
                       entity_id=str(seeded["dark"]), details={"from": str(refund), "to": "x"}, at=NOW),
            AuditEntry(actor="cli:root", action="add_channel", entity_type="channel", entity_id=str(refund),
                       details={}, at=NOW),
        ])
    with factory() as session:
        mix = channel_mix(session, refund)
        assert [(share.channel, share.items) for share in mix] == [("zendesk", 10), ("github", 2)]
        assert sum(share.share for share in mix) == pytest.approx(1.0)
        items = theme_items(session, refund, page=1, per_page=4)
        assert items.total == 12 and items.pages == 3 and len(items.rows) == 4
        assert [row.created_at for row in items.rows] == sorted((row.created_at for row in items.rows), reverse=True)
        assert all(not row.text.startswith("ORIGINAL") for row in items.rows)
        found = theme_items(session, refund, search="WEEKS")
        assert found.total == 2 and {row.channel for row in found.rows} == {"github"}
        assert theme_items(session, refund, search="50%").total == 0
        tickets = theme_tickets(session, refund)
        assert [(t.target_type, t.state, t.external_ref, t.url, t.external_status) for t in tickets] == [
            ("jira", "delivered", "PAY-12", "https://jira.example/PAY-12", "In Progress")]
        history = theme_history(session, refund, limit=10)
        assert [entry.action for entry in history] == ["merge", "set_status"]  # newest first, not the others
        assert history[0].details == {"into": refund} and history[0].at.tzinfo is not None
        assert history[0].undone_by_id is None and history[1].undone_by_id is not None
        assert len(theme_history(session, refund, limit=1)) == 1
        with pytest.raises(NotFound):
            theme_timeline(session, 999_999)
        with pytest.raises(InvalidInput, match="grain"):
            theme_timeline(session, refund, grain="month")
        with pytest.raises(InvalidInput, match="per_page"):
            theme_items(session, refund, per_page=1000)
        with pytest.raises(InvalidInput, match="search"):
            theme_items(session, refund, search="x" * 201)


def test_sparkline_svg_is_accessible_and_escapes_its_label() -> None:
    svg = sparkline_svg([0, 2, 5, 1], width=100, height=20, label='Refund <script>alert("x")</script> & co')
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&amp; co" in svg
    root = ET.fromstring(str(svg))  # well-formed XML
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.get("aria-label", "").startswith("Refund <script>")
    assert root.find(f"{namespace}title") is not None and root.find(f"{namespace}desc") is not None
    points = root.find(f"{namespace}polyline").get("points", "").split()  # type: ignore[union-attr]
    assert len(points) == 4 and points[2].endswith(",2")  # the peak reaches the top padding
    empty = ET.fromstring(str(sparkline_svg([], label="nothing")))
    assert empty.find(f"{namespace}polyline") is None


def test_timeline_svg_draws_bars_line_axes_and_escapes() -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    buckets = [TimelineBucket(start=start + timedelta(days=n), volume=volume, mean_sentiment=sentiment)
               for n, (volume, sentiment) in enumerate([(3, -0.5), (0, None), (6, 0.25)])]
    svg = str(timeline_svg(buckets, label="<b>Refunds</b>", date_format="%Y-%m-%d"))
    assert "<b>" not in svg and "&lt;b&gt;Refunds&lt;/b&gt;" in svg
    root = ET.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.get("role") == "img" and root.get("aria-label") == "<b>Refunds</b>"
    desc = root.find(f"{namespace}desc")
    assert desc is not None and "9 items from 2026-06-01 to 2026-06-03" in (desc.text or "")
    bars = root.findall(f"{namespace}g/{namespace}rect")
    assert len(bars) == 3 and float(bars[2].get("height", "0")) > float(bars[0].get("height", "0")) > 0
    assert float(bars[1].get("height", "1")) == 0
    line = root.find(f"{namespace}polyline")
    assert line is not None and len(line.get("points", "").split()) == 2  # the bucket without sentiment skipped
    labels = [text.text for text in root.iter(f"{namespace}text")]
    assert "2026-06-01" in labels and "2026-06-03" in labels and "6" in labels
    assert "no data" in str(timeline_svg([]))
    assert math.isfinite(float(bars[0].get("y", "nan")))
