"""The channels' vitality in the workspace: ``/channels`` (every channel at a glance) and ``/channels/{name}``
(its weeks as a chart and a table, its trend, staff answers and decline episodes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape
from sqlalchemy import select

from api.deps import SessionDep
from api.pages.charts import sparkline_svg
from api.pages.common import PageUser, render
from core.community.decline import channel_decline_settings, decline_option_problem, recent_episodes
from core.community.vitality import MAX_WEEKS, WeekFigures, channel_vitality, known_channels, require_channel
from core.models import Channel

router = APIRouter(include_in_schema=False)
ChannelPath = Annotated[str, Path(min_length=1, max_length=128)]
WeeksQuery = Annotated[int, Query(ge=1, le=MAX_WEEKS)]
WEEK_CHOICES = (8, 12, 26, 52)
OVERVIEW_WEEKS = 8


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def activity_svg(weeks: Sequence[WeekFigures], width: int = 640, height: int = 200,
                 label: str = "Posts and active authors per week") -> Markup:
    """Bars for each week's community posts, a dashed line for its active authors, weeks below."""
    text = escape(label)
    head = (f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{text}"><title>{text}</title>')
    if not weeks:
        return Markup(head + "<desc>no data</desc></svg>")
    busiest = max(weeks, key=lambda week: week.posts)
    desc = (f"{sum(week.posts for week in weeks)} posts from {weeks[0].iso_week} to {weeks[-1].iso_week} "
            f"(the last still running); most in {busiest.iso_week} ({busiest.posts}); active authors from "
            f"{min(week.active_authors for week in weeks)} to {max(week.active_authors for week in weeks)} a week")
    left, right, top, bottom = 36.0, 12.0, 8.0, 22.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(busiest.posts, max(week.active_authors for week in weeks), 1)
    slot = plot_w / len(weeks)
    parts = [head, f"<desc>{escape(desc)}</desc>", '<g class="bars" fill="currentColor" fill-opacity="0.35">']
    for i, week in enumerate(weeks):
        bar_h = plot_h * week.posts / peak
        parts.append(f'<rect x="{_number(left + slot * i + slot * 0.1)}" y="{_number(top + plot_h - bar_h)}" '
                     f'width="{_number(max(slot * 0.8, 0.5))}" height="{_number(bar_h)}">'
                     f"<title>{escape(week.iso_week)}: {week.posts} posts</title></rect>")
    parts.append("</g>")
    line = " ".join(f"{_number(left + slot * (i + 0.5))},{_number(top + plot_h * (1 - week.active_authors / peak))}"
                    for i, week in enumerate(weeks))
    axis_y = _number(top + plot_h)
    parts += [
        f'<polyline class="authors" points="{line}" fill="none" stroke="currentColor" stroke-width="1.5" '
        'stroke-dasharray="4 2"/>',
        f'<line x1="{_number(left)}" y1="{axis_y}" x2="{_number(left + plot_w)}" y2="{axis_y}" stroke="currentColor"/>',
        '<g font-size="10" fill="currentColor">',
        f'<text x="{_number(left - 4)}" y="{_number(top + 8)}" text-anchor="end">{peak}</text>',
        f'<text x="{_number(left - 4)}" y="{axis_y}" text-anchor="end">0</text>',
        f'<text x="{_number(left)}" y="{_number(height - 6)}">{escape(weeks[0].iso_week)}</text>',
        f'<text x="{_number(left + plot_w)}" y="{_number(height - 6)}" text-anchor="end">'
        f"{escape(weeks[-1].iso_week)}</text>",
        "</g></svg>"]
    return Markup("".join(parts))


@router.get("/channels", response_class=HTMLResponse)
def channels_page(request: Request, current: PageUser, session: SessionDep) -> HTMLResponse:
    plugins = {name: plugin for name, plugin in session.execute(select(Channel.name, Channel.plugin))}
    rows = []
    for name in known_channels(session):
        vitality = channel_vitality(session, name, OVERVIEW_WEEKS)
        episodes = recent_episodes(session, name, limit=1)
        rows.append({"name": name, "plugin": plugins.get(name), "vitality": vitality,
                     "last": vitality.weeks[-2], "declining": bool(episodes) and episodes[0].ended_week is None,
                     "sparkline": sparkline_svg([week.posts for week in vitality.weeks],
                                                label=f"{name}: posts per week, last {OVERVIEW_WEEKS} weeks")})
    return render(request, "channels.html", current, {"rows": rows, "overview_weeks": OVERVIEW_WEEKS},
                  session=session)


@router.get("/channels/{name}", response_class=HTMLResponse)
def channel_page(request: Request, name: ChannelPath, current: PageUser, session: SessionDep,
                 weeks: WeeksQuery = 12) -> HTMLResponse:
    require_channel(session, name)
    vitality = channel_vitality(session, name, weeks)
    episodes = recent_episodes(session, name)
    return render(request, "channel.html", current, {
        "vitality": vitality, "chosen_weeks": weeks, "week_choices": WEEK_CHOICES,
        "settings": channel_decline_settings(session, name), "episodes": episodes,
        "option_problem": decline_option_problem(session, name),
        "declining": any(episode.ended_week is None for episode in episodes),
        "chart": activity_svg(vitality.weeks, label=f"{name}: posts and active authors per week")}, session=session)
