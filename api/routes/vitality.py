"""Community vitality of a channel (``GET /api/v1/channels/{name}/vitality``): counts only, no person named."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import ReadKey, SessionDep
from api.errors import API_ERRORS, error_responses
from api.inputs import UtcDatetime
from core.community.decline import channel_decline_settings, recent_episodes
from core.community.decline_options import DeclineSettings
from core.community.models_vitality import DeclineEpisode
from core.community.vitality import MAX_WEEKS, Vitality, WeekFigures, channel_vitality, require_channel

router = APIRouter(prefix="/api/v1/channels", tags=["channels"], responses=error_responses(*API_ERRORS))
ChannelPath = Annotated[str, Path(min_length=1, max_length=128, description="A channel's name.")]
WeeksQuery = Annotated[int, Query(ge=1, le=MAX_WEEKS, description="ISO weeks shown, the current one included.")]


class WeekPublic(BaseModel):
    week: str = Field(description="ISO week, e.g. 2026-W48 (UTC)")
    start: UtcDatetime
    complete: bool = Field(description="False for the current week, still filling up")
    posts: int = Field(description="Community posts (staff posts apart)")
    staff_posts: int
    active_authors: int
    new_authors: int = Field(description="Authors whose first community post in this channel is this week")
    returning_authors: int
    threads_opened: int = Field(description="Threads opened by a community post this week")
    threads_staff_answered: int | None = Field(description="Of those, answered by staff; null: staff unknown")
    staff_answer_share: float | None
    median_hours_to_staff_answer: float | None


class TrendPublic(BaseModel):
    slope: float | None = Field(description="Least-squares slope of posts per week over the complete weeks")
    change_share: float | None = Field(description="The slope as a share of the mean weekly posts")
    direction: str = Field(description="rising, falling, steady or unknown")
    weeks_used: int


class EpisodePublic(BaseModel):
    peak_week: UtcDatetime
    detected_week: UtcDatetime
    ended_week: UtcDatetime | None
    weekly_posts: list[int]
    notice_state: str
    owner: str | None
    target_type: str | None


class DeclinePublic(BaseModel):
    alerts: bool = Field(description="Whether this channel's owner is told of declines")
    weeks: int | None = Field(description="Weeks of falling posts in a row before the owner is told")
    min_posts: int | None
    owner: str | None = Field(description="The channel option 'owner'; null: the rules file's default")
    declining: bool = Field(description="An episode is open: posts fell and have not risen since")
    episodes: list[EpisodePublic]


class VitalityPublic(BaseModel):
    channel: str
    weeks: list[WeekPublic]
    trend: TrendPublic
    staff_measured: bool = Field(description="Whether the channel says who is staff")
    active_authors: int = Field(description="Distinct community authors over the window")
    threads_opened: int
    threads_staff_answered: int | None
    staff_answer_share: float | None
    median_hours_to_staff_answer: float | None
    decline: DeclinePublic


def _week(figures: WeekFigures) -> WeekPublic:
    return WeekPublic(week=figures.iso_week, start=figures.start, complete=figures.complete, posts=figures.posts,
                      staff_posts=figures.staff_posts, active_authors=figures.active_authors,
                      new_authors=figures.new_authors, returning_authors=figures.returning_authors,
                      threads_opened=figures.threads_opened, threads_staff_answered=figures.threads_staff_answered,
                      staff_answer_share=figures.staff_answer_share,
                      median_hours_to_staff_answer=figures.median_hours_to_staff_answer)


def _episode(episode: DeclineEpisode) -> EpisodePublic:
    return EpisodePublic(peak_week=episode.peak_week, detected_week=episode.detected_week,
                         ended_week=episode.ended_week, weekly_posts=list(episode.weekly_posts),
                         notice_state=episode.notice_state, owner=episode.owner, target_type=episode.target_type)


def public_vitality(vitality: Vitality, settings: DeclineSettings | None,
                    episodes: list[DeclineEpisode]) -> VitalityPublic:
    decline = DeclinePublic(
        alerts=settings is not None and settings.weeks > 0, weeks=settings.weeks if settings else None,
        min_posts=settings.min_posts if settings else None, owner=settings.owner if settings else None,
        declining=any(episode.ended_week is None for episode in episodes),
        episodes=[_episode(episode) for episode in episodes])
    return VitalityPublic(
        channel=vitality.channel, weeks=[_week(figures) for figures in vitality.weeks],
        trend=TrendPublic(slope=vitality.trend.slope, change_share=vitality.trend.change_share,
                          direction=vitality.trend.direction, weeks_used=vitality.trend.weeks_used),
        staff_measured=vitality.staff_measured, active_authors=vitality.active_authors,
        threads_opened=vitality.threads_opened, threads_staff_answered=vitality.threads_staff_answered,
        staff_answer_share=vitality.staff_answer_share,
        median_hours_to_staff_answer=vitality.median_hours_to_staff_answer, decline=decline)


@router.get("/{name}/vitality", operation_id="channel_vitality", responses=error_responses(404))
def get_vitality(name: ChannelPath, session: SessionDep, _reader: ReadKey, weeks: WeeksQuery = 12) -> VitalityPublic:
    """Active, new and returning authors, posts per week and its trend, staff answers, decline episodes."""
    require_channel(session, name)
    return public_vitality(channel_vitality(session, name, weeks), channel_decline_settings(session, name),
                           recent_episodes(session, name))
