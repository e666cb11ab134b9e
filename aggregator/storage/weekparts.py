"""Week parts: per store and local day, its Monday-to-Sunday week summed up to that day and from that day on.

A period of days then needs few rows per store whatever its length: the `from_day` part of its first day,
the `to_day` part of the Sunday of each whole week after that, and the `to_day` part of its last day. A
period inside one week that neither starts on its Monday nor ends on its Sunday reads its (at most five)
daily rows instead. Each part holds what summing its daily rows gives: counts, open days, days with ended
visits, the largest daily median of those days and their summed visit-duration histogram, so a period's
figures come out exactly as from its daily rows (car-zone seconds up to floating-point rounding).

A part exists only where its days hold at least one daily row, so a store has parts in a period exactly
when it has daily rows there. Pure functions: the storage backend reads and writes the rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from aggregator import histogram
from aggregator.storage.base import Row

TO_DAY = "to_day"
"""Part of the days from the week's Monday up to and including the day."""
FROM_DAY = "from_day"
"""Part of the days from the day up to and including the week's Sunday."""
PARTS = (TO_DAY, FROM_DAY)


def monday(day: date) -> date:
    """The Monday of the day's week."""
    return day - timedelta(days=day.weekday())


def week_days(first: date, last: date) -> list[str]:
    """Day keys of every day of the weeks from `first`'s to `last`'s, Monday to Sunday."""
    start = monday(first)
    n = (monday(last) - start).days + 7
    return [(start + timedelta(days=i)).isoformat() for i in range(n)]


@dataclass(frozen=True)
class PeriodParts:
    """Where a period's days are summed: parts of these days, or daily rows of days [days[0], days[1]]."""

    from_days: tuple[str, ...] = ()
    to_days: tuple[str, ...] = ()
    days: tuple[str, str] | None = None


def period_parts(start: str, end: str) -> PeriodParts:
    """The parts (or daily rows) whose sum is the period of days [start, end] (day keys 'YYYY-MM-DD')."""
    a, b = date.fromisoformat(start), date.fromisoformat(end)
    if a > b:
        return PeriodParts(days=(start, end))
    if monday(a) == monday(b):
        if a.weekday() == 0:
            return PeriodParts(to_days=(end,))
        if b.weekday() == 6:
            return PeriodParts(from_days=(start,))
        return PeriodParts(days=(start, end))
    sundays = week_days(monday(a) + timedelta(days=7), monday(b) - timedelta(days=7))[6::7]
    return PeriodParts(from_days=(start,), to_days=(*sundays, end))


_N_COUNTS = 7
"""visitors, car_browsers, car_entrants, receptions, open_days, active_hours, days_with_ended."""


def week_part_rows(store_id: str, daily: Sequence[Row]) -> list[Row]:
    """The week parts of the weeks that `daily`, every daily row of one store in those weeks, falls in.

    daily: (day, visitors, car_browsers, car_entrants, receptions, visits_ended, median_visit_s, visit_hist,
    car_zone_s, active_hours) each, any order. Returns (day, part, store_id, visitors, car_browsers,
    car_entrants, receptions, open_days, car_zone_s, active_hours, days_with_ended, max_median_visit_s,
    visit_hist) for each day and part whose days hold a daily row.
    """
    if not daily:
        return []
    days = [date.fromisoformat(str(r[0])) for r in daily]
    first = min(monday(d) for d in days)
    n_weeks = (max(monday(d) for d in days) - first).days // 7 + 1
    # Slot of each daily row in a (week, weekday) grid from the first week on.
    slot = np.array([(d - first).days for d in days], dtype=np.intp)
    ended = [int(r[5]) > 0 for r in daily]
    present = np.zeros(n_weeks * 7, dtype=np.int64)
    present[slot] = 1
    counts = np.zeros((n_weeks * 7, _N_COUNTS), dtype=np.int64)
    counts[slot] = [
        (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[1]) > 0, int(r[9]), e)
        for r, e in zip(daily, ended, strict=True)
    ]
    zone_s = np.zeros(n_weeks * 7, dtype=np.float64)
    zone_s[slot] = [float(r[8]) for r in daily]
    medians = np.full(n_weeks * 7, np.nan)
    medians[slot] = [
        float(r[6]) if e and r[6] is not None else np.nan for r, e in zip(daily, ended, strict=True)
    ]
    hists = np.zeros((n_weeks * 7, histogram.N_BINS), dtype=np.int64)
    hists[slot] = histogram.decode_rows([r[7] if e else None for r, e in zip(daily, ended, strict=True)])
    out: list[Row] = []
    for part, reverse in ((TO_DAY, False), (FROM_DAY, True)):
        n_days = _along_weeks(present, np.add, n_weeks, reverse)
        c_list = _along_weeks(counts, np.add, n_weeks, reverse).tolist()
        z_list = _along_weeks(zone_s, np.add, n_weeks, reverse).tolist()
        m_list = _along_weeks(medians, np.fmax, n_weeks, reverse).tolist()
        h_list = histogram.encode_rows(_along_weeks(hists, np.add, n_weeks, reverse))
        for i in np.flatnonzero(n_days):
            visitors, browsers, entrants, receptions, open_days, hours, with_ended = c_list[i]
            out.append(
                (
                    (first + timedelta(days=int(i))).isoformat(),
                    part,
                    store_id,
                    visitors,
                    browsers,
                    entrants,
                    receptions,
                    open_days,
                    z_list[i],
                    hours,
                    with_ended,
                    None if math.isnan(m_list[i]) else m_list[i],
                    h_list[i] if with_ended else None,
                )
            )
    return out


_G = TypeVar("_G", bound=np.generic)


def _along_weeks(a: npt.NDArray[_G], op: np.ufunc, n_weeks: int, reverse: bool) -> npt.NDArray[_G]:
    """Running `op` (np.add: sums, np.fmax: maximum) of per-day rows (n_weeks * 7 of them, first axis) along
    each week, from its Monday on or (`reverse`) from its Sunday back; same shape and row order."""
    weeks = a.reshape(n_weeks, 7, -1)
    if reverse:
        weeks = weeks[:, ::-1]
    done: npt.NDArray[_G] = op.accumulate(weeks, axis=1)
    if reverse:
        done = done[:, ::-1]
    return done.reshape(a.shape)
