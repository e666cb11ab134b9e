"""How figures are written on screen: one place, so every view shows a rate or a change the same way."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo


def pct(ratio: float | None, digits: int = 2) -> str:
    """0.7797 -> '77.97%'; None (rate undefined, e.g. no visitors) -> '–'."""
    if ratio is None or math.isnan(ratio):
        return "–"
    return f"{100 * ratio:.{digits}f}%"


def change(ratio: float | None, digits: int = 2) -> str | None:
    """Day-over-day or week-over-week change `(now - then) / then` as '+68.57%'; None when undefined."""
    if ratio is None or math.isnan(ratio) or math.isinf(ratio):
        return None
    return f"{100 * ratio:+.{digits}f}%"


def count(value: float | None) -> str:
    """A whole count with thousands separators; '–' when unknown."""
    if value is None:
        return "–"
    return f"{round(value):,}"


def seconds(value: float | None) -> str:
    """A duration: '45 s', '12 min 5 s', '1 h 3 min'."""
    if value is None or math.isnan(value):
        return "–"
    total = round(value)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def timestamp(value: datetime | None) -> str:
    """A UTC or zoned time as 'YYYY-MM-DD HH:MM:SS' (its own zone); '–' when unknown."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def local_day(value: datetime, timezone: str) -> str:
    """The calendar day of an instant in a store's time zone, 'YYYY-MM-DD'."""
    return value.astimezone(ZoneInfo(timezone)).date().isoformat()
