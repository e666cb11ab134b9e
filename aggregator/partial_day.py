"""A store day's funnel counts as they stood at an instant: the day up to a local time of day.

Daily rollups hold whole days, and hourly ones count visitors only, so a day still in progress cannot be
compared with earlier days from them. This module replays the day's stored contract events (those with
`ts` before the cut-off) with the ingest's own rules, so "yesterday until 09:10" is exactly what the store
would have read at 09:10 yesterday:

- a visitor counts on the day their visit started (a `visit.started` event, or a `visit.ended` that says
  when the visit started when the start was lost), if that start is before the cut-off;
- a car browser dwelt `browse_min_s` in one car's browse zone (one stay, or several summed), or their
  `visit.ended` said so, before the cut-off; likewise car entrants (`car.entry`) and receptions
  (`reception`);
- visit durations are those of the visits that ended before the cut-off.

Pure: events in, counts out, no clock and no I/O.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from aggregator.timebuckets import day_span_utc, parse_ts_key

FUNNEL_EVENT_TYPES = ("visit.started", "visit.ended", "zone.dwell", "car.entry", "reception")
"""The event types whose facts make a day's funnel."""


@dataclass(frozen=True)
class StoredEvent:
    """One stored contract event: its type and its JSON payload (as received)."""

    type: str
    payload: str


@dataclass(frozen=True)
class PartialCounts:
    """A day's funnel counts up to a cut-off, and the durations (s) of its visits that had ended by then."""

    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    durations_s: tuple[float, ...]


@dataclass
class _Visit:
    started: bool = False
    browsed: bool = False
    entered_car: bool = False
    received: bool = False
    duration_s: float | None = None
    dwell_s: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))


def cutoff_on(day: date, local_time: time, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which `day` reaches `local_time` on the store's clock, kept inside the day.

    A wall time that does not exist that day (clocks going forward) resolves as zoneinfo does (fold 0)."""
    start, end = day_span_utc(day, tz)
    at = datetime.combine(day, local_time, tzinfo=tz).astimezone(start.tzinfo)
    return min(max(at, start), end)


def counts_until(
    events: Iterable[StoredEvent], day_start_utc: datetime, cutoff_utc: datetime, browse_min_s: float
) -> PartialCounts:
    """The funnel of the visits that started in [day_start_utc, cutoff_utc), as the events with `ts` before
    `cutoff_utc` tell it. `events` may hold more (later ones, other days): they are filtered here."""
    visits: defaultdict[str, _Visit] = defaultdict(_Visit)
    for event in events:
        data = json.loads(event.payload)
        ts = parse_ts_key(data["ts"])
        if ts >= cutoff_utc:
            continue
        v = visits[data["visitor_id"]]
        if event.type == "visit.started":
            v.started = day_start_utc <= ts
        elif event.type == "visit.ended":
            if not v.started and day_start_utc <= parse_ts_key(data["started_at"]) < cutoff_utc:
                v.started = True
            v.duration_s = float(data["duration_s"])
            v.browsed |= bool(data["browsed"])
            v.entered_car |= bool(data["entered_car"])
            v.received |= bool(data["received"])
        elif event.type == "zone.dwell":
            v.dwell_s[data["zone_id"]] += float(data["dwell_s"])
        elif event.type == "car.entry":
            v.entered_car = True
        elif event.type == "reception":
            v.received = True
    counted = [v for v in visits.values() if v.started]
    browsed = [v.browsed or any(s >= browse_min_s for s in v.dwell_s.values()) for v in counted]
    return PartialCounts(
        visitors=len(counted),
        car_browsers=sum(browsed),
        car_entrants=sum(v.entered_car for v in counted),
        receptions=sum(v.received for v in counted),
        durations_s=tuple(v.duration_s for v in counted if v.duration_s is not None),
    )
