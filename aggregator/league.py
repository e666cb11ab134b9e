"""HQ's league: stores ranked within their brand, the change against the period before, the stores that
need a look (outliers, partial or missing days), and totals per brand and region.

Pure: period figures in, rows and flags out (`Queries.league_report` reads the figures). Health is
compared only within a brand (each brand's stores are scored against their own TOP), so ranks are per
brand and each row carries its brand's size.

Outlier rules (a store that needs a look, not a statistical test):
- `below_own_trend`: its visitors per open day in the period's closed days are below `TREND_FLOOR` of its
  visitors per open day over the `TREND_DAYS` days before the period;
- `below_brand`: its health score is below `BRAND_FLOOR` of its brand's median health score (brands of at
  least `MIN_BRAND_SIZE` stores with data).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

TREND_DAYS = 28
TREND_FLOOR = 0.7
BRAND_FLOOR = 0.7
MIN_BRAND_SIZE = 3

Outlier = Literal["below_own_trend", "below_brand"]


@dataclass(frozen=True)
class Counts:
    """A period's funnel counts and the rates they make."""

    visitors: int
    car_browsers: int
    car_entrants: int
    receptions: int
    open_days: int = 0

    @property
    def browse_rate(self) -> float | None:
        return self.car_browsers / self.visitors if self.visitors else None

    @property
    def car_entry_rate(self) -> float | None:
        return self.car_entrants / self.car_browsers if self.car_browsers else None

    @property
    def reception_rate(self) -> float | None:
        return self.receptions / self.visitors if self.visitors else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.visitors + other.visitors,
            self.car_browsers + other.car_browsers,
            self.car_entrants + other.car_entrants,
            self.receptions + other.receptions,
            self.open_days + other.open_days,
        )

    json_properties = ("browse_rate", "car_entry_rate", "reception_rate")

    @staticmethod
    def total(items: Iterable[Counts]) -> Counts:
        """The sum of `items` (ZERO for none), field by field: thousands of stores without a `Counts` each."""
        v = b = e = r = o = 0
        for c in items:
            v += c.visitors
            b += c.car_browsers
            e += c.car_entrants
            r += c.receptions
            o += c.open_days
        return Counts(v, b, e, r, o)


ZERO = Counts(0, 0, 0, 0, 0)


@dataclass(frozen=True)
class PeriodChange:
    """Against the period before: counts as fractions (0.5 = +50%), rates and health in points."""

    visitors: float | None
    car_browsers: float | None
    car_entrants: float | None
    browse_rate_pp: float | None
    car_entry_rate_pp: float | None
    reception_rate_pp: float | None
    health_points: float | None


def _fraction(now: float, then: float) -> float | None:
    return (now - then) / then if then else None


def _points(now: float | None, then: float | None, scale: float = 100.0) -> float | None:
    return None if now is None or then is None else scale * (now - then)


def period_change(
    now: Counts, then: Counts | None, health: float | None, previous_health: float | None
) -> PeriodChange:
    """The change from `then` to `now` (None throughout without a previous period)."""
    if then is None:
        return PeriodChange(None, None, None, None, None, None, _points(health, previous_health, 1.0))
    return PeriodChange(
        _fraction(now.visitors, then.visitors),
        _fraction(now.car_browsers, then.car_browsers),
        _fraction(now.car_entrants, then.car_entrants),
        _points(now.browse_rate, then.browse_rate),
        _points(now.car_entry_rate, then.car_entry_rate),
        _points(now.reception_rate, then.reception_rate),
        _points(health, previous_health, 1.0),
    )


@dataclass(frozen=True)
class LeagueEntry:
    store_id: str
    name: str
    brand: str
    region: str
    counts: Counts
    previous: Counts | None
    """The period of the same length just before, its last day cut like this period's when partial; None
    when it cannot be compared (no data, or history stored as rollups only)."""
    change: PeriodChange
    health: float | None
    previous_health: float | None
    """Health over the previous period (None when this period is partial: health is not cut by time)."""
    brand_rank: int | None
    """Rank by health within the brand (1 = best); None without a health score."""
    brand_size: int
    """Stores of the brand with data in the period: what its health scores are measured against."""
    partial: bool
    """The period's last day was still in progress at `as_of` (in the store's zone)."""
    compared_until: str | None
    """Local wall time the last day (and the previous period's) is counted up to when partial."""
    missing_days: int
    """Closed days of the period without a single visitor recorded (silent node, closed store)."""
    visitors_per_open_day: float | None
    """Over the period's closed days (a partial last day left out)."""
    trend_visitors_per_day: float | None
    """Visitors per open day over the `TREND_DAYS` days before the period."""
    outliers: tuple[Outlier, ...]


@dataclass(frozen=True)
class GroupTotal:
    """The summed figures of a brand's or a region's stores."""

    kind: Literal["brand", "region"]
    key: str
    stores: int
    counts: Counts
    previous: Counts | None
    """None when any of its stores cannot be compared."""
    change: PeriodChange
    partial_stores: int
    stores_missing_days: int
    outlier_stores: int


@dataclass(frozen=True)
class LeagueReport:
    start: date
    end: date
    as_of: datetime
    previous_start: date
    previous_end: date
    entries: tuple[LeagueEntry, ...]
    """Brand by brand, best health first within each."""
    brands: tuple[GroupTotal, ...]
    regions: tuple[GroupTotal, ...]


def outliers_of(
    visitors_per_day: float | None,
    trend_per_day: float | None,
    health: float | None,
    brand_median_health: float | None,
    brand_size: int,
) -> tuple[Outlier, ...]:
    out: list[Outlier] = []
    if visitors_per_day is not None and trend_per_day and visitors_per_day < TREND_FLOOR * trend_per_day:
        out.append("below_own_trend")
    if (
        health is not None
        and brand_median_health is not None
        and brand_size >= MIN_BRAND_SIZE
        and health < BRAND_FLOOR * brand_median_health
    ):
        out.append("below_brand")
    return tuple(out)


def brand_ranks(healths: dict[str, float | None]) -> dict[str, int | None]:
    """Rank of each store by health (1 = best, ties by store id); None without a score."""
    scored = sorted((s for s, h in healths.items() if h is not None), key=lambda s: (-(healths[s] or 0.0), s))
    ranks: dict[str, int | None] = dict.fromkeys(healths)
    ranks.update({s: i + 1 for i, s in enumerate(scored)})
    return ranks


def median_health(healths: Sequence[float | None]) -> float | None:
    present = [h for h in healths if h is not None]
    return statistics.median(present) if present else None


def totals(entries: Sequence[LeagueEntry], kind: Literal["brand", "region"]) -> tuple[GroupTotal, ...]:
    """Per brand or region: summed counts now and before (only when every store can be compared)."""
    groups: defaultdict[str, list[LeagueEntry]] = defaultdict(list)
    for e in entries:
        groups[e.brand if kind == "brand" else e.region].append(e)
    out = []
    for key in sorted(groups):
        members = groups[key]
        now = Counts.total(e.counts for e in members)
        comparable = all(e.previous is not None for e in members)
        then = Counts.total(e.previous or ZERO for e in members) if comparable else None
        out.append(
            GroupTotal(
                kind,
                key,
                len(members),
                now,
                then,
                period_change(now, then, None, None),
                sum(e.partial for e in members),
                sum(e.missing_days > 0 for e in members),
                sum(bool(e.outliers) for e in members),
            )
        )
    return tuple(out)
