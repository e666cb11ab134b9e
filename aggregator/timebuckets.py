"""Local-time buckets: which store day and which store hour an instant belongs to.

Every rollup is keyed in the store's own time zone. A day is the span from one local midnight to the
next, so it lasts 23, 24 or 25 hours across daylight-saving changes; an hour bucket is keyed by the UTC
instant at which that local hour starts, which keeps a repeated hour (clocks going back) as two buckets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from edge.events import format_ts


def ts_key(ts: datetime) -> str:
    """The stored form of an instant: RFC 3339 UTC with milliseconds, exactly as `edge.events.format_ts`
    writes it (sortable as text), but faster on the ingest path, which formats several per event
    (`%` formatting of the fields costs about half of `isoformat(timespec=...)`)."""
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 (an f-string is slower here)
        ts.year,
        ts.month,
        ts.day,
        ts.hour,
        ts.minute,
        ts.second,
        ts.microsecond // 1000,
    )


@lru_cache(maxsize=4096)
def _epoch_key(epoch_s: float) -> str:
    return ts_key(datetime.fromtimestamp(epoch_s, UTC))


def parse_ts_key(key: str) -> datetime:
    """An instant from its stored form (`ts_key`, or any RFC 3339 time with `Z` or an offset)."""
    return datetime.fromisoformat(key.replace("Z", "+00:00"))


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (cached)."""
    return ZoneInfo(name)


def _hour_start_s(ts_utc: datetime, local: datetime) -> float:
    """Epoch seconds at which the local hour containing `ts_utc` began (`local`: `ts_utc` in the store's
    zone). Floored in UTC by the local offset, so a repeated local hour (clocks going back) stays two
    distinct buckets; epoch hours are UTC hours."""
    offset = (local.utcoffset() or timedelta(0)).total_seconds()
    return (ts_utc.timestamp() + offset) // 3600 * 3600 - offset


def day_and_hour(ts_utc: datetime, tz: ZoneInfo) -> tuple[str, str]:
    """`local_day(...).isoformat()` and `hour_key(...)` at once: the ingest path needs both for every visit,
    and one conversion to local time serves both."""
    local = ts_utc.astimezone(tz)
    return local.date().isoformat(), _epoch_key(_hour_start_s(ts_utc, local))


def local_day(ts_utc: datetime, tz: ZoneInfo) -> date:
    """The store-local calendar day containing `ts_utc`."""
    return ts_utc.astimezone(tz).date()


def hour_start_utc(ts_utc: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the local hour containing `ts_utc` began."""
    return datetime.fromtimestamp(_hour_start_s(ts_utc, ts_utc.astimezone(tz)), UTC)


def day_span_utc(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of a local day in UTC; end - start is 23, 24 or 25 hours around DST changes."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).astimezone(UTC)
    return start, end


@dataclass(frozen=True)
class LocalHour:
    """One hour bucket of a local day."""

    start_utc: datetime
    local_hour: int
    """Wall-clock hour 0-23 at the bucket's start."""
    fold: int
    """1 for the second occurrence of a repeated wall-clock hour (clocks went back), else 0."""

    @property
    def key(self) -> str:
        return format_ts(self.start_utc)

    @property
    def label(self) -> str:
        return f"{self.local_hour:02d}:00" + ("*" if self.fold else "")


@lru_cache(maxsize=8192)
def hours_of_day(day: date, tz: ZoneInfo) -> tuple[LocalHour, ...]:
    """Every hour bucket of a local day, in order (23, 24 or 25 of them; fewer minutes in odd zones)."""
    start, end = day_span_utc(day, tz)
    hours: list[LocalHour] = []
    seen: set[int] = set()
    t = hour_start_utc(start, tz)
    while t < end:
        local = t.astimezone(tz)
        hours.append(LocalHour(t, local.hour, 1 if local.hour in seen else 0))
        seen.add(local.hour)
        t = hour_start_utc(t + timedelta(hours=1), tz)
    return tuple(hours)


def hour_key(ts_utc: datetime, tz: ZoneInfo) -> str:
    """The stored key of the local hour containing `ts_utc`."""
    return _epoch_key(_hour_start_s(ts_utc, ts_utc.astimezone(tz)))


def days_between(start: date, end: date) -> list[date]:
    """Every day from `start` to `end`, both included."""
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]
