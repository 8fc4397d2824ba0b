"""The texts owners get: a theme's ticket and a spike notice, written in one place so they read alike.

Both carry redacted quotes only and end with the theme's link (the last line, which chat targets show
on its own and Jira turns into a link).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.themes.signals import ThemeSignals
from core.types import ThemeView

QUOTES_SHOWN = 3


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str


def theme_link(public_url: str, theme_id: int) -> str:
    return f"{public_url.rstrip('/')}/themes/{theme_id}"


def _quotes(theme: ThemeView) -> str:
    return "\n".join(f'> "{quote}"' for quote in theme.quotes[:QUOTES_SHOWN])


def ticket_message(theme: ThemeView, public_url: str) -> Message:
    """A ticket's title and body: label, metrics, redacted quotes, and a link back to the theme."""
    link = theme_link(public_url, theme.id)
    body = (
        f"Theme: {theme.label}\n"
        f"Keywords: {', '.join(theme.keywords[:8])}\n"
        f"Volume: {theme.volume} items, {theme.share_of_voice:.1%} of all feedback\n"
        f"Mean sentiment: {theme.mean_sentiment:+.2f}\n"
        f"Kinds: {', '.join(f'{k} {n}' for k, n in sorted(theme.kinds.items()))}\n\n"
        f"What people said:\n{_quotes(theme)}\n\n"
        f"{link}"
    )
    return Message(f"[feedbackloop] {theme.label} ({theme.volume} items)", body, link)


def spike_message(theme: ThemeView, signals: ThemeSignals, public_url: str) -> Message:
    """An urgent notice: how many items came in the last hour against how many were expected."""
    link = theme_link(public_url, theme.id)
    body = (f"Theme {theme.label!r} is spiking: {signals.recent} items in the last hour, about "
            f"{signals.expected:.1f} expected (spike score {signals.anomaly_score:.1f}).\n\n"
            f"What people said:\n{_quotes(theme)}\n\n{link}")
    return Message(f"[feedbackloop] Spike: {theme.label} ({signals.recent} items in the last hour)", body, link)
