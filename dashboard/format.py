"""How figures are written on screen: one place, so every view shows a rate or a change the same way."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo


def pct(ratio: float | None, digits: int = 2) -> str:
    """0.7797 -> '77.97%'; None (rate undefined, e.g. no visitors) -> '–'."""
    if ratio is None or math.isnan(ratio):
        return "–"
    return f"{100 * ratio:.{digits}f}%"


def pct_of(percent: float | None) -> str:
    """A share already in percent, whole: 134.2 -> '134%'; None -> '–'."""
    if percent is None or math.isnan(percent):
        return "–"
    return f"{percent:,.0f}%"


def change(ratio: float | None, digits: int = 2) -> str | None:
    """Day-over-day or week-over-week change `(now - then) / then` as '+68.57%'; None when undefined."""
    if ratio is None or math.isnan(ratio) or math.isinf(ratio):
        return None
    if abs(ratio) < NEUTRAL_CHANGE:
        ratio = 0.0  # never '-0.00%'
    return f"{100 * ratio:+.{digits}f}%"


NEUTRAL_CHANGE = 0.00005
"""A relative change smaller than this shows as 0.00%: neither up nor down."""
NEUTRAL_POINTS = 0.005
"""A rate change smaller than this many percentage points shows as 0.00 pp: neither up nor down."""


def points(now: float | None, then: float | None, unit: str = "pp", digits: int = 2) -> str | None:
    """The change of a rate in percentage points: 0.2391 after 0.2121 -> '+2.70 pp'; None without both."""
    if now is None or then is None or math.isnan(now) or math.isnan(then):
        return None
    change_pp = 100 * (now - then)
    if abs(change_pp) < NEUTRAL_POINTS:
        change_pp = 0.0
    return f"{change_pp:+.{digits}f} {unit}"


def count(value: float | None) -> str:
    """A whole count with thousands separators; '–' when unknown."""
    if value is None:
        return "–"
    return f"{round(value):,}"


# Units of a duration per language: days, hours, minutes, seconds, and what joins two parts.
_DURATION_UNITS: dict[str, tuple[str, str, str, str, str]] = {
    "en": (" d", " h", " min", " s", " "),
    "zh": ("天", "小时", "分", "秒", ""),
}


def seconds(value: float | None, lang: str = "en") -> str:
    """A duration: '45 s', '12 min 5 s', '1 h 3 min' ('45秒', '12分5秒', '1小时3分' in Chinese)."""
    if value is None or math.isnan(value):
        return "–"
    d_unit, h_unit, m_unit, s_unit, join = _DURATION_UNITS.get(lang, _DURATION_UNITS["en"])
    total = round(value)
    if total < 60:
        return f"{total}{s_unit}"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}{m_unit}{join}{secs}{s_unit}" if secs else f"{minutes}{m_unit}"
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24}{d_unit}{join}{hours % 24}{h_unit}"
    return f"{hours}{h_unit}{join}{minutes}{m_unit}" if minutes else f"{hours}{h_unit}"


def day(value: date, lang: str = "en") -> str:
    """A calendar day: '2026-11-20' ('2026年11月20日' in Chinese)."""
    if lang == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return value.isoformat()


_WEEKDAYS_ZH = "一二三四五六日"


def day_with_weekday(value: date, lang: str = "en") -> str:
    """A calendar day with its weekday: '2026-11-20 Fri' ('2026年11月20日 周五' in Chinese)."""
    if lang == "zh":
        return f"{day(value, lang)} 周{_WEEKDAYS_ZH[value.weekday()]}"
    return f"{value.isoformat()} {value:%a}"


def month_day(value: date, lang: str = "en") -> str:
    """A day of this year, short: 'Nov 20' ('11月20日' in Chinese)."""
    if lang == "zh":
        return f"{value.month}月{value.day}日"
    return f"{value:%b} {value.day}"


def timestamp(value: datetime | None) -> str:
    """A UTC or zoned time as 'YYYY-MM-DD HH:MM:SS' (its own zone); '–' when unknown."""
    if value is None:
        return "–"
    return value.strftime("%Y-%m-%d %H:%M:%S")


def local_day(value: datetime, timezone: str, lang: str = "en") -> str:
    """The calendar day of an instant in a store's time zone, 'YYYY-MM-DD' ('2026年11月20日')."""
    return day(value.astimezone(ZoneInfo(timezone)).date(), lang)


def local_time(value: datetime, timezone: str, lang: str = "en") -> str:
    """An instant in a store's time zone with the zone named: '2026-11-20 09:10 (Asia/Shanghai)'
    ('2026年11月20日 09:10（Asia/Shanghai）' in Chinese)."""
    local = value.astimezone(ZoneInfo(timezone))
    if lang == "zh":
        return f"{day(local.date(), lang)} {local:%H:%M}（{timezone}）"
    return f"{local.strftime('%Y-%m-%d %H:%M')} ({timezone})"


def utc_time(value: datetime | None, lang: str = "en") -> str:
    """An instant in UTC, labelled: '2026-11-20 01:10:00 UTC' ('2026年11月20日 01:10:00 UTC'); '–' when
    unknown."""
    if value is None:
        return "–"
    utc = value.astimezone(UTC)
    if lang == "zh":
        return f"{day(utc.date(), lang)} {utc:%H:%M:%S} UTC"
    return utc.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


def number(value: float | None, digits: int = 1) -> str:
    """A measured quantity with thousands separators: 2150.0 -> '2,150.0'; '–' when unknown."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:,.{digits}f}"


def metres(value: float | None, lang: str = "en") -> str:
    """A small distance: 0.08 -> '0.08 m' ('0.08 米'); '–' when unknown."""
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2f} {'米' if lang == 'zh' else 'm'}"
