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


def week_part_rows(daily: Sequence[Row]) -> list[Row]:
    """The week parts of the stores' weeks that hold `daily`: daily_store rows (as `write_daily` takes them),
    every one of those weeks', any stores, any order.

    Returns (day, part, store_id, visitors, car_browsers, car_entrants, receptions, open_days, car_zone_s,
    active_hours, days_with_ended, max_median_visit_s, visit_hist) for each day and part whose days hold a
    daily row.
    """
    if not daily:
        return []
    days = [date.fromisoformat(str(r[1])) for r in daily]
    # Each row's slot in a grid of (store, week) x weekday.
    week_keys = [(str(r[0]), monday(d)) for r, d in zip(daily, days, strict=True)]
    weeks = sorted(set(week_keys))
    week_index = {k: i for i, k in enumerate(weeks)}
    n_weeks = len(weeks)
    slot = np.array([week_index[k] * 7 + d.weekday() for k, d in zip(week_keys, days, strict=True)], np.intp)
    ended = [int(r[6]) > 0 for r in daily]
    present = np.zeros(n_weeks * 7, dtype=np.int64)
    present[slot] = 1
    counts = np.zeros((n_weeks * 7, _N_COUNTS), dtype=np.int64)
    counts[slot] = [
        (int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[2]) > 0, int(r[11]), e)
        for r, e in zip(daily, ended, strict=True)
    ]
    zone_s = np.zeros(n_weeks * 7, dtype=np.float64)
    zone_s[slot] = [float(r[10]) for r in daily]
    medians = np.full(n_weeks * 7, np.nan)
    medians[slot] = [
        float(r[8]) if e and r[8] is not None else np.nan for r, e in zip(daily, ended, strict=True)
    ]
    hists = np.zeros((n_weeks * 7, histogram.N_BINS), dtype=np.int32)  # a week's visits: far below 2**31
    hists[slot] = histogram.decode_rows([r[9] if e else None for r, e in zip(daily, ended, strict=True)])
    day_keys = {w: [(w + timedelta(days=k)).isoformat() for k in range(7)] for w in {w for _s, w in weeks}}
    slot_days = [key for _s, w in weeks for key in day_keys[w]]
    slot_stores = [store_id for store_id, _w in weeks for _k in range(7)]
    out: list[Row] = []
    for part, reverse in ((TO_DAY, False), (FROM_DAY, True)):
        found = np.flatnonzero(_along_weeks(present, np.add, n_weeks, reverse))
        visitors, browsers, entrants, receptions, open_days, hours, with_ended = _along_weeks(
            counts, np.add, n_weeks, reverse
        )[found].T.tolist()
        medians_max = _along_weeks(medians, np.fmax, n_weeks, reverse)[found].tolist()
        blobs = histogram.encode_rows(_along_weeks(hists, np.add, n_weeks, reverse)[found])
        at = found.tolist()
        out.extend(
            zip(
                [slot_days[i] for i in at],
                [part] * len(at),
                [slot_stores[i] for i in at],
                visitors,
                browsers,
                entrants,
                receptions,
                open_days,
                _along_weeks(zone_s, np.add, n_weeks, reverse)[found].tolist(),
                hours,
                with_ended,
                [None if math.isnan(m) else m for m in medians_max],
                [b if e else None for b, e in zip(blobs, with_ended, strict=True)],
                strict=True,
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
