"""The daily digest: one store-day in a few lines a manager can forward (JSON for systems, Markdown for mail).

Funnel with day-over-day and week-over-week (a day in progress compared up to the same local time), the
most and least browsed cars, the busiest hour, health against the brand, the nodes, and the notable changes
spelled out: a count that moved by `NOTABLE_FRACTION` or more, a rate by `NOTABLE_POINTS` or more, a car
nobody browsed, a node not reporting, an audit missing or stale. Every figure is read in one snapshot.
With an as-of time the funnel is cut at it; cars, hours and health are read as stored (rollups have no
finer time than the hour).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from aggregator.audit import STALE_AFTER
from aggregator.queries import CHANGE_UNITS, Funnel, Queries
from aggregator.serialize import jsonable

NOTABLE_FRACTION = 0.2
NOTABLE_POINTS = 5.0
TOP_CARS = 3
HEALTH_DAYS = 30

_LABELS = {
    "visitors": "Visitors",
    "car_browsers": "Car browsers",
    "car_entrants": "Car entrants",
    "receptions": "Receptions",
    "browse_rate_pp": "Browse rate",
    "car_entry_rate_pp": "Car-entry rate",
    "reception_rate_pp": "Reception rate",
    "median_visit_s": "Median visit",
}


def _notable_changes(f: Funnel) -> list[dict[str, Any]]:
    """Each figure whose change against a base day crosses the notable thresholds."""
    out = []
    for base, change in (("day_before", f.dod), ("week_before", f.wow)):
        for name, unit in CHANGE_UNITS.items():
            value = getattr(change, name)
            if value is None:
                continue
            limit = NOTABLE_POINTS if unit == "percentage_points" else NOTABLE_FRACTION
            if abs(value) >= limit:
                out.append({"figure": name, "against": base, "change": value, "unit": unit})
    return out


def digest_data(q: Queries, store_id: str, day: date, as_of: datetime | None = None) -> dict[str, Any]:
    """The digest as JSON-ready data. `as_of` (default now) is the instant the day is read at."""
    info = q.store(store_id)
    start = day - timedelta(days=HEALTH_DAYS - 1)
    with q.snapshot():
        page = q.store_page(store_id, day, day, day, as_of, as_stored=as_of is None)
        health = q.health(store_id, start, day)
        nodes = q.nodes([store_id], page.as_of)
    f = page.funnel
    cars = page.cars
    busiest = max(page.hourly, key=lambda h: h.visitors, default=None)
    # The dimension furthest below the brand's TOP (none when every one reaches it).
    weakest = min(
        (d for d in health.dimensions if d.score is not None and d.score < 100.0),
        key=lambda d: d.score or 0.0,
        default=None,
    )
    notes: list[dict[str, Any]] = _notable_changes(f)
    notes += [{"car_ignored": c.car_id, "model_name": c.model_name} for c in cars if c.browsers == 0]
    notes += [
        {"node_offline": n.node_id, "last_seen_at": jsonable(n.last_seen_at)} for n in nodes if not n.online
    ]
    audit = page.last_audit
    if audit is None or audit.is_stale(page.as_of, STALE_AFTER):
        notes.append({"audit_stale": True, "last_audit_end": jsonable(audit.end if audit else None)})
    return {
        "store": {
            "store_id": info.store_id,
            "name": info.name,
            "brand": info.brand,
            "timezone": info.timezone,
        },
        "day": day.isoformat(),
        "as_of": jsonable(f.as_of),
        "partial": f.partial,
        "compared_until": f.compared_until,
        "funnel": jsonable(f),
        "top_cars": jsonable(cars[:TOP_CARS]),
        "ignored_cars": [c.car_id for c in cars if c.browsers == 0],
        "busiest_hour": None
        if busiest is None or busiest.visitors == 0
        else {"hour": busiest.label, "visitors": busiest.visitors},
        "health": {
            "days": HEALTH_DAYS,
            "score": jsonable(health.score),
            "brand": health.brand,
            "brand_stores": health.brand_stores,
            "weakest": None if weakest is None else {"name": weakest.name, "label": weakest.label},
            "dimensions": jsonable(health.dimensions),
        },
        "nodes": [{"node_id": n.node_id, "online": n.online, "seq_missing": n.seq_missing} for n in nodes],
        "audit_accuracy": None if audit is None else jsonable(audit.accuracy),
        "notable": notes,
    }


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _change(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    return f"{v:+.2f} pp" if unit == "percentage_points" else f"{100 * v:+.2f}%"


def digest_markdown(data: dict[str, Any]) -> str:
    """The digest as Markdown (from `digest_data`, so both say the same)."""
    store, f = data["store"], data["funnel"]
    until = f" until {data['compared_until']}" if data["partial"] else ""
    lines = [
        f"# {store['name']} — {data['day']}"
        + (f" (so far, {data['compared_until']})" if data["partial"] else ""),
        "",
        f"| Figure | Day | Day-over-day{until} | Week-over-week{until} |",
        "|---|---:|---:|---:|",
    ]
    today = f["today"]
    for name, unit in CHANGE_UNITS.items():
        figure = name.removesuffix("_pp")
        value = today[figure]
        shown = _pct(value) if unit == "percentage_points" else "–" if value is None else f"{value:,.0f}"
        if figure == "median_visit_s" and value is not None:
            shown = f"{value:,.0f} s"
        dod, wow = _change(f["dod"][name], unit), _change(f["wow"][name], unit)
        lines.append(f"| {_LABELS[name]} | {shown} | {dod} | {wow} |")
    lines += ["", "## Cars"]
    lines += [
        f"- {c['model_name'] or c['car_id']}: {c['browsers']:,} browsers, {c['entries']:,} entries"
        for c in data["top_cars"]
    ] or ["- No car was browsed."]
    if data["busiest_hour"]:
        lines += [
            "",
            f"Busiest hour: {data['busiest_hour']['hour']} ({data['busiest_hour']['visitors']:,} visitors)",
        ]
    h = data["health"]
    score = "–" if h["score"] is None else f"{h['score']:.1f}"
    lines += [
        "",
        f"## Health: {score} / 100 over {h['days']} days "
        f"(against {h['brand_stores']} store(s) of brand {h['brand'] or '–'})",
    ]
    if h["weakest"]:
        lines.append(f"Weakest: {h['weakest']['label']}")
    lines += ["", "## Notable"]
    lines += [_note(n) for n in data["notable"]] or ["- Nothing unusual."]
    return "\n".join(lines) + "\n"


def _note(n: dict[str, Any]) -> str:
    if "figure" in n:
        against = "the day before" if n["against"] == "day_before" else "the same day last week"
        return f"- {_LABELS[n['figure']]} {_change(n['change'], n['unit'])} against {against}"
    if "car_ignored" in n:
        return f"- Nobody browsed {n['model_name'] or n['car_ignored']}"
    if "node_offline" in n:
        return f"- Node {n['node_offline']} is not reporting (last seen {n['last_seen_at'] or 'never'})"
    if n["last_audit_end"] is None:
        return "- The door count was never audited"
    return f"- The door count was last audited on {n['last_audit_end'][:10]}: due again"
