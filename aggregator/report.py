"""The store-day report: the day's funnel, per-car table and health against the brand, as JSON or text.

A day still in progress at the report's as-of time is compared with the day before and the same weekday a
week before up to the same local time (`funnel.partial`, `funnel.compared_until`); a closed day with whole
days. Count changes are fractions (0.5 = +50%), rate changes percentage points (`funnel.dod.units`).
The funnel is read as it stood at the as-of time; the per-car table, hourly traffic and health are read
as stored (rollups have no finer time than the hour).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from aggregator.queries import Queries
from aggregator.serialize import jsonable


def report_data(
    q: Queries, store_id: str, day: date, health_days: int = 30, as_of: datetime | None = None
) -> dict[str, Any]:
    """The report as plain JSON-ready data; health covers the `health_days` days ending on `day`; the
    funnel is read as it stood at `as_of` (default: now)."""
    start = day - timedelta(days=health_days - 1)
    funnel = q.funnel(store_id, day, as_of)
    return {
        "store": jsonable(q.store(store_id))
        if store_id in {s.store_id for s in q.stores()}
        else {"store_id": store_id},
        "day": day.isoformat(),
        "as_of": jsonable(funnel.as_of),
        "partial": funnel.partial,
        "funnel": jsonable(funnel),
        "cars": jsonable(q.car_ranking(store_id, day, day)),
        "hourly": jsonable(q.hourly_traffic(store_id, day)),
        "health": jsonable(q.health(store_id, start, day)),
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _chg(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.2f}%"


def _pp(v: float | None) -> str:
    return "-" if v is None else f"{v:+.2f} pp"


def _num(v: float | None, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += [
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(out)


def report_text(
    q: Queries, store_id: str, day: date, health_days: int = 30, as_of: datetime | None = None
) -> str:
    f = q.funnel(store_id, day, as_of)
    t, dod, wow = f.today, f.dod, f.wow
    funnel_rows = [
        ["Visitors", str(t.visitors), _chg(dod.visitors), _chg(wow.visitors)],
        ["Car browsers", str(t.car_browsers), _chg(dod.car_browsers), _chg(wow.car_browsers)],
        ["Car entrants", str(t.car_entrants), _chg(dod.car_entrants), _chg(wow.car_entrants)],
        ["Receptions", str(t.receptions), _chg(dod.receptions), _chg(wow.receptions)],
        ["Browse rate", _pct(t.browse_rate), _pp(dod.browse_rate_pp), _pp(wow.browse_rate_pp)],
        ["Car-entry rate", _pct(t.car_entry_rate), _pp(dod.car_entry_rate_pp), _pp(wow.car_entry_rate_pp)],
        ["Reception rate", _pct(t.reception_rate), _pp(dod.reception_rate_pp), _pp(wow.reception_rate_pp)],
        ["Median visit (s)", _num(t.median_visit_s), _chg(dod.median_visit_s), _chg(wow.median_visit_s)],
    ]
    until = f" until {f.compared_until}" if f.partial else ""
    cars = q.car_ranking(store_id, day, day)
    car_rows = [
        [
            c.car_id,
            c.model_name or "",
            str(c.browsers),
            _num(c.dwell_total_s),
            _num(c.dwell_median_s),
            str(c.entries),
        ]
        for c in cars
    ]
    h = q.health(store_id, day - timedelta(days=health_days - 1), day)
    health_rows = [
        [
            d.name,
            _num(d.value, 3),
            _num(d.score),
            _num(d.brand_top, 3),
            _num(d.brand_average, 3),
            _num(d.weight),
        ]
        for d in h.dimensions
    ]
    return "\n\n".join(
        [
            f"Store {store_id}, {day.isoformat()}"
            + (f" until {f.compared_until} (day in progress)" if f.partial else ""),
            _table(["Funnel", "Day", f"Day-over-day{until}", f"Week-over-week{until}"], funnel_rows),
            _table(["Car", "Model", "Browsers", "Dwell total s", "Dwell median s", "Entries"], car_rows),
            f"Health {_num(h.score)} over {health_days} days "
            f"(brand {h.brand or '-'}, {h.brand_stores} store(s))\n"
            + _table(["Dimension", "Value", "Score", "Brand TOP", "Brand avg", "Weight"], health_rows),
        ]
    )
