"""Store view (store manager; brand HQ for any store of their brand).

The day's funnel with day-over-day and week-over-week change, hourly traffic against the same weekday
last week, the floor heatmap over the floor plan with the display cars, the car ranking, occupancy now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import streamlit as st

from aggregator.audit import STALE_AFTER, Audit
from aggregator.queries import CarStats, Funnel, Heatmap, HourTraffic, StoreInfo
from dashboard import charts
from dashboard import format as fmt
from dashboard.health_view import render_health
from dashboard.i18n import Lang, t
from dashboard.views.common import ViewContext, pick_day, pick_period, pick_store, show_chart, store_today

OCCUPANCY_FRESH = timedelta(minutes=5)

# (i18n key, attribute of FunnelFigures / FunnelChange, is a rate)
FUNNEL_FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("m.visitors", "visitors", False),
    ("m.car_browsers", "car_browsers", False),
    ("m.car_entrants", "car_entrants", False),
    ("m.browse_rate", "browse_rate", True),
    ("m.car_entry_rate", "car_entry_rate", True),
    ("m.reception_rate", "reception_rate", True),
)


def _change_line(
    lang: Lang, ratio: float | None, label_key: str, *, points: bool = False, until: str = ""
) -> str:
    """'▲ +68.57% day-over-day' in green (red when down, grey when flat or undefined); a rate's change in
    percentage points ('▲ +5.00 pp'); `until`: the local time a day in progress is compared up to."""
    text = None if ratio is None else f"{ratio:+.2f} pp" if points else fmt.change(ratio)
    label = t(lang, label_key) + (" " + t(lang, "store.until", time=until) if until else "")
    if text is None or ratio is None:
        return f":gray[– {label}]"
    colour, arrow = ("green", "▲") if ratio > 0 else ("red", "▼") if ratio < 0 else ("gray", "■")
    return f":{colour}[{arrow} {text}] :gray[{label}]"


def render_funnel(lang: Lang, funnel: Funnel) -> None:
    st.subheader(t(lang, "store.funnel"))
    # Counts on one row, rates on the next: three cards a row stay readable on a tablet.
    cards = [
        (column, figure)
        for row in (FUNNEL_FIGURES[:3], FUNNEL_FIGURES[3:])
        for column, figure in zip(st.columns(3), row, strict=True)
    ]
    for column, (key, attr, is_rate) in cards:
        value = getattr(funnel.today, attr)
        with column, st.container(border=True, key=f"metric_{attr}"):
            st.metric(t(lang, key), fmt.pct(value) if is_rate else fmt.count(value))
            change_attr, until = (f"{attr}_pp" if is_rate else attr), funnel.compared_until or ""
            st.markdown(
                _change_line(
                    lang, getattr(funnel.dod, change_attr), "store.vs_yesterday", points=is_rate, until=until
                )
                + "  \n"
                + _change_line(
                    lang, getattr(funnel.wow, change_attr), "store.vs_last_week", points=is_rate, until=until
                )
            )


def _render_audit(ctx: ViewContext, store: StoreInfo, audit: Audit | None) -> None:
    """How far the door counts can be trusted: the last audit's accuracy, or that there is none."""
    lang = ctx.lang
    if audit is None:
        st.caption(t(lang, "store.audit_never"))
        return
    line = t(
        lang,
        "store.audit",
        accuracy=fmt.pct(audit.accuracy),
        day=fmt.local_day(audit.end, store.timezone),
        auditor=audit.auditor,
    )
    if audit.is_stale(datetime.now(UTC)):
        line += " " + t(lang, "store.audit_stale", days=STALE_AFTER.days)
    st.caption(line)


def _render_hourly(ctx: ViewContext, hours: list[HourTraffic]) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "store.hourly"))
    if not hours:
        st.info(t(lang, "empty"))
        return
    chart = charts.hourly_chart(
        [h.local_hour for h in hours],
        [h.visitors for h in hours],
        [h.last_week_visitors for h in hours],
        this_label=t(lang, "store.hourly_today"),
        last_week_label=t(lang, "store.hourly_last_week"),
        hour_label=t(lang, "store.hour"),
        visitors_label=t(lang, "m.visitors"),
    )
    show_chart(chart, "chart_hourly", alt=t(lang, "store.hourly"))


def _render_heatmap(ctx: ViewContext, store: StoreInfo, heat: Heatmap) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "store.heatmap"))
    st.caption(t(lang, "store.heatmap_caption", cell=f"{heat.cell_m:g}"))
    if heat.grid.size == 0 or not np.any(heat.grid > 0):
        st.info(t(lang, "store.heatmap_none"))
    if heat.grid.size == 0:
        return
    cars = [charts.CarOutline(c.id, c.model_name, c.interior_zone_m, c.browse_zone_m) for c in store.cars]
    spec = charts.heatmap_spec(
        heat.grid.astype(np.float64),
        heat.cell_m,
        heat.floor_size_m,
        cars,
        colour_title=t(lang, "store.person_s"),
    )
    show_chart(spec, "chart_heatmap", alt=t(lang, "store.heatmap"))


def _render_cars(ctx: ViewContext, ranking: list[CarStats]) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "store.cars"))
    st.caption(t(lang, "store.cars_caption"))
    if not ranking:
        st.info(t(lang, "empty"))
        return
    labels = [c.model_name or c.car_id for c in ranking]
    chart_col, table_col = st.columns([2, 3])
    show_chart(
        charts.car_ranking_chart(
            labels,
            [c.browsers for c in ranking],
            [c.entries for c in ranking],
            browsers_label=t(lang, "car.browsers"),
            entries_label=t(lang, "car.entries"),
        ),
        "chart_cars",
        alt=t(lang, "store.cars"),
        container=chart_col,
    )
    table = {
        t(lang, "car.id"): [c.car_id for c in ranking],
        t(lang, "car.model"): labels,
        t(lang, "car.browsers"): [c.browsers for c in ranking],
        t(lang, "car.dwell_total"): [f"{c.dwell_total_s / 60:.1f}" for c in ranking],
        t(lang, "car.dwell_median"): [
            "–" if c.dwell_median_s is None else f"{c.dwell_median_s:.1f}" for c in ranking
        ],
        t(lang, "car.entries"): [c.entries for c in ranking],
        t(lang, "car.ignored"): ["⚠" if c.browsers == 0 else "" for c in ranking],
    }
    table_col.table(table, hide_index=True)


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    store = pick_store(ctx)
    if store is None:
        return
    today = store_today(store)
    day = pick_day(ctx, today)
    start, end = pick_period(ctx, day, key="store")

    # One snapshot (one cache entry) per page, period and minute: no two figures on the page disagree.
    page = ctx.data.store_page(
        store.store_id, day, start, end, datetime.now(UTC).replace(second=0, microsecond=0)
    )
    head, occupancy_col = st.columns([3, 1])
    with head:
        st.title(t(lang, "store.title", store=store.name, date=day.isoformat()))
    with occupancy_col:
        occ = page.occupancy
        # The floor count of a recent minute is best; else the visits started and not yet ended.
        fresh = occ.floor_minute is not None and occ.as_of - occ.floor_minute <= OCCUPANCY_FRESH
        shown = occ.floor_occupancy if fresh else occ.open_visits
        as_of = occ.floor_minute if fresh and occ.floor_minute is not None else occ.as_of
        st.metric(
            t(lang, "store.occupancy"),
            fmt.count(shown),
            help=t(
                lang, "store.occupancy_as_of", time=fmt.timestamp(as_of.astimezone(ZoneInfo(store.timezone)))
            ),
        )

    if page.history is not None:
        st.info(t(lang, "store.history_loading", n=page.history.days_loaded, m=page.history.days_total))
    render_funnel(lang, page.funnel)
    _render_audit(ctx, store, page.last_audit)
    _render_hourly(ctx, page.hourly)
    st.caption(t(lang, "store.period_summary", start=start.isoformat(), end=end.isoformat()))
    _render_heatmap(ctx, store, page.heatmap)
    _render_cars(ctx, page.cars)
    render_health(lang, page.health, store.name)
