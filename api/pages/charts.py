"""Charts drawn on the server as inline SVG: no JavaScript, readable by screen readers, text escaped.

Pure functions from numbers to markup. Each chart is an image (``role="img"``) named by its
``aria-label`` and ``<title>``, with a ``<desc>`` that says in words what the picture shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from markupsafe import Markup, escape


class Bucket(Protocol):
    """What ``timeline_svg`` draws: core.themes.timeline.TimelineBucket has this shape."""

    @property
    def start(self) -> datetime: ...
    @property
    def volume(self) -> int: ...
    @property
    def mean_sentiment(self) -> float | None: ...


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def sparkline_svg(counts: Sequence[int], width: int = 120, height: int = 24, label: str = "items per period") -> Markup:
    """A small line of ``counts`` (oldest first), its last point marked; ``label`` names it."""
    text = escape(label)
    peak = max(counts, default=0)
    summary = escape(f"{', '.join(str(n) for n in counts)} (oldest first)" if counts else "no data")
    head = (f'<svg class="sparkline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{text}"><title>{text}</title>'
            f"<desc>{summary}</desc>")
    if not counts:
        return Markup(head + "</svg>")
    pad = 2.0
    span_x = (width - 2 * pad) / max(len(counts) - 1, 1)
    points = [(pad + span_x * i, height - pad - (height - 2 * pad) * (n / peak if peak else 0.0))
              for i, n in enumerate(counts)]
    line = " ".join(f"{_number(x)},{_number(y)}" for x, y in points)
    last_x, last_y = points[-1]
    return Markup(head + f'<polyline points="{line}" fill="none" stroke="currentColor" stroke-width="1.5" '
                  f'stroke-linejoin="round"/><circle cx="{_number(last_x)}" cy="{_number(last_y)}" r="2" '
                  'fill="currentColor"/></svg>')


def timeline_svg(buckets: Sequence[Bucket], width: int = 640, height: int = 200, label: str = "Items over time",
                 date_format: str = "%d %b") -> Markup:
    """Bars for each bucket's volume, a line for its mean sentiment (-1 to 1, right axis), dates below."""
    text = escape(label)
    head = (f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{text}"><title>{text}</title>')
    if not buckets:
        return Markup(head + "<desc>no data</desc></svg>")
    total = sum(bucket.volume for bucket in buckets)
    busiest = max(buckets, key=lambda bucket: bucket.volume)
    rated = [bucket.mean_sentiment for bucket in buckets if bucket.mean_sentiment is not None]
    first, last = buckets[0].start.strftime(date_format), buckets[-1].start.strftime(date_format)
    desc = (f"{total} items from {first} to {last}; most on {busiest.start.strftime(date_format)} "
            f"({busiest.volume})" + (f"; mean sentiment from {min(rated):+.2f} to {max(rated):+.2f}" if rated else ""))
    left, right, top, bottom = 36.0, 36.0, 8.0, 22.0
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max(busiest.volume, 1)
    slot = plot_w / len(buckets)
    parts = [head, f"<desc>{escape(desc)}</desc>", '<g class="bars" fill="currentColor" fill-opacity="0.35">']
    for i, bucket in enumerate(buckets):
        bar_h = plot_h * bucket.volume / peak
        parts.append(f'<rect x="{_number(left + slot * i + slot * 0.1)}" y="{_number(top + plot_h - bar_h)}" '
                     f'width="{_number(max(slot * 0.8, 0.5))}" height="{_number(bar_h)}">'
                     f"<title>{escape(bucket.start.strftime(date_format))}: {bucket.volume}</title></rect>")
    parts.append("</g>")
    line = " ".join(f"{_number(left + slot * (i + 0.5))},{_number(top + plot_h * (1 - bucket.mean_sentiment) / 2)}"
                    for i, bucket in enumerate(buckets) if bucket.mean_sentiment is not None)
    if line:
        parts.append(f'<polyline class="sentiment" points="{line}" fill="none" stroke="currentColor" '
                     'stroke-width="1.5" stroke-dasharray="4 2"/>')
    axis_y = _number(top + plot_h)
    parts += [
        f'<line x1="{_number(left)}" y1="{axis_y}" x2="{_number(left + plot_w)}" y2="{axis_y}" stroke="currentColor"/>',
        '<g font-size="10" fill="currentColor">',
        f'<text x="{_number(left - 4)}" y="{_number(top + 8)}" text-anchor="end">{peak}</text>',
        f'<text x="{_number(left - 4)}" y="{axis_y}" text-anchor="end">0</text>',
        f'<text x="{_number(left + plot_w + 4)}" y="{_number(top + 8)}">+1</text>',
        f'<text x="{_number(left + plot_w + 4)}" y="{_number(top + plot_h / 2 + 3)}">0</text>',
        f'<text x="{_number(left + plot_w + 4)}" y="{axis_y}">-1</text>',
        f'<text x="{_number(left)}" y="{_number(height - 6)}">{escape(first)}</text>',
        f'<text x="{_number(left + plot_w)}" y="{_number(height - 6)}" text-anchor="end">{escape(last)}</text>',
        "</g></svg>"]
    return Markup("".join(parts))
