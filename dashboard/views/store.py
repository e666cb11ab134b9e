"""Store view (store manager; brand HQ for any store of their brand).

The day's funnel with day-over-day and week-over-week change, hourly traffic against the same weekday
last week, the floor heatmap over the floor plan with the display cars, the car ranking, occupancy now.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import numpy as np
import streamlit as st

from aggregator.audit import STALE_AFTER, Audit
from aggregator.queries import CarStats, Funnel, FunnelFigures, Heatmap, HourTraffic, StoreInfo
from aggregator.zones import FloorZone
from dashboard import charts
from dashboard import format as fmt
from dashboard.health_view import render_health
from dashboard.heat import CLIP_PERCENTILE, floor_heat, zone_seconds
from dashboard.i18n import Lang, t
from dashboard.report import report_pdf, report_png
from dashboard.views.common import (
    CHARTS_SHOWN,
    ViewContext,
    pick_day,
    pick_period,
    pick_store,
    show_chart,
    show_table,
    store_today,
)

OCCUPANCY_FRESH = timedelta(minutes=5)
LIVE_EVERY_S = 10
"""How often "on the floor now" refreshes itself."""

# (i18n key, attribute of FunnelFigures / FunnelChange, is a rate)
FUNNEL_FIGURES: tuple[tuple[str, str, bool], ...] = (
    ("m.visitors", "visitors", False),
    ("m.car_browsers", "car_browsers", False),
    ("m.car_entrants", "car_entrants", False),
    ("m.browse_rate", "browse_rate", True),
    ("m.car_entry_rate", "car_entry_rate", True),
    ("m.reception_rate", "reception_rate", True),
)


def _coloured(lang: Lang, text: str | None, sign: float | None, label_key: str, until: str = "") -> str:
    """'▲ +68.57% day-over-day' in green, red when down, grey when flat (0.00 is neither) or undefined;
    `until`: the local time a day in progress is compared up to ('vs yesterday until 09:10')."""
    label = t(lang, label_key) + (" " + t(lang, "store.until", time=until) if until else "")
    if text is None or sign is None:
        return f":gray[– {label}]"
    colour, arrow = ("green", "▲") if sign > 0 else ("red", "▼") if sign < 0 else ("gray", "■")
    return f":{colour}[{arrow} {text}] :gray[{label}]"


def change_line(lang: Lang, ratio: float | None, label_key: str, until: str = "") -> str:
    """A count's relative change, `(now - then) / then`, in percent."""
    text = fmt.change(ratio)
    if text is None or ratio is None:
        return _coloured(lang, None, None, label_key, until)
    return _coloured(lang, text, 0.0 if text == "+0.00%" else ratio, label_key, until)


def points_line(lang: Lang, now: float | None, then: float | None, label_key: str, until: str = "") -> str:
    """A rate's change in percentage points, labelled as such ('+2.70 pp')."""
    text = fmt.points(now, then, unit=t(lang, "store.points"))
    sign = (
        None if text is None or now is None or then is None else (0.0 if text[1:5] == "0.00" else now - then)
    )
    return _coloured(lang, text, sign, label_key, until)


def render_funnel(lang: Lang, funnel: Funnel, is_today: bool) -> None:
    """The funnel's six cards with their day-over-day and week-over-week change. The heading says which
    day it is ("Today's funnel" only for today)."""
    heading = (
        t(lang, "store.funnel") if is_today else t(lang, "store.funnel_of", date=fmt.day(funnel.day, lang))
    )
    st.subheader(heading)
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
            # The bases are cut at the same local time when the day is in progress (`compared_until`).
            until = funnel.compared_until or ""
            if is_rate:
                lines = [
                    points_line(lang, value, _rate(funnel.day_before, attr), "store.vs_yesterday", until),
                    points_line(lang, value, _rate(funnel.week_before, attr), "store.vs_last_week", until),
                ]
            else:
                lines = [
                    change_line(lang, getattr(funnel.dod, attr), "store.vs_yesterday", until),
                    change_line(lang, getattr(funnel.wow, attr), "store.vs_last_week", until),
                ]
            st.markdown("  \n".join(lines))
    st.caption(t(lang, "store.points_note"))


def _rate(figures: FunnelFigures | None, attr: str) -> float | None:
    value = None if figures is None else getattr(figures, attr)
    return None if value is None else float(value)


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
        day=fmt.local_day(audit.end, store.timezone, lang),
        auditor=audit.auditor,
    )
    if audit.is_stale(datetime.now(UTC)):
        line += " " + t(lang, "store.audit_stale", days=STALE_AFTER.days)
    st.caption(line)


def _render_hourly(ctx: ViewContext, store: StoreInfo, hours: list[HourTraffic]) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "store.hourly"))
    if not any(h.visitors or h.last_week_visitors for h in hours):
        st.info(t(lang, "empty"))  # words, not empty axes
        return
    chart = charts.hourly_chart(
        [h.local_hour for h in hours],
        [h.visitors for h in hours],
        [h.last_week_visitors for h in hours],
        this_label=t(lang, "store.hourly_today"),
        last_week_label=t(lang, "store.hourly_last_week"),
        hour_label=t(lang, "store.hour", tz=store.timezone),
        visitors_label=t(lang, "m.visitors"),
    )
    show_chart(chart, "chart_hourly", alt=t(lang, "store.hourly"))


def _render_heatmap(ctx: ViewContext, store: StoreInfo, heat: Heatmap) -> None:
    """Where people go: the floor's person-seconds per cell over the floor plan, on a perceptual colour
    scale clipped at a high percentile (the legend says so); time inside the cars apart, per car."""
    lang = ctx.lang
    st.subheader(t(lang, "store.heatmap"))
    if heat.grid.size == 0 or not np.any(heat.grid > 0):
        st.info(t(lang, "store.heatmap_none"))
        return
    split = floor_heat(heat.grid, heat.cell_m, {c.id: c.interior_zone_m for c in store.cars})
    cars = [charts.CarOutline(c.id, c.model_name, c.interior_zone_m, c.browse_zone_m) for c in store.cars]
    inside = {
        car_id: t(lang, "store.inside", minutes=fmt.count(s / 60)) for car_id, s in split.inside_s.items()
    }
    legend = t(lang, "store.heat_legend", pct=f"{CLIP_PERCENTILE:g}")
    plan = plan_drawing(ctx, store)
    spec = charts.heatmap_spec(
        split.floor,
        heat.cell_m,
        heat.floor_size_m,
        cars,
        colour_title=legend,
        colour_top=split.colour_top_s,
        inside_labels=inside,
        plan=plan,
        plan_title=t(lang, "plan.legend"),
    )
    show_chart(spec, "chart_heatmap", alt=t(lang, "store.heatmap"))
    st.caption(t(lang, "store.plan_drawing" if plan.image_png else "store.plan_outline"))
    st.caption(
        t(
            lang,
            "store.heatmap_caption",
            cell=f"{heat.cell_m:g}",
            pct=f"{CLIP_PERCENTILE:g}",
            top=fmt.count(split.colour_top_s),
            busiest=fmt.count(split.busiest_s),
        )
    )
    if split.inside_s:
        names = {c.id: c.model_name or c.id for c in store.cars}
        ranked = sorted(split.inside_s.items(), key=lambda kv: -kv[1])
        table = {
            t(lang, "car.model"): [names.get(car_id, car_id) for car_id, _ in ranked],
            t(lang, "store.inside_col"): [fmt.count(s / 60) for _, s in ranked],
        }
        st.markdown(f"**{t(lang, 'store.inside_title')}**")
        show_table(lang, table, "table_inside_cars")


def unnamed_labels(lang: Lang, store: StoreInfo) -> dict[str, str]:
    """What the page calls the doors and staff areas the registry gives no name: their kind and place in
    the plan, translated ("Door 2", "员工区 1"), never an installer's id. Keys: the door's id, the staff
    area's zone id."""
    plan = store.plan
    out = {d.id: f"{t(lang, 'plan.door')} {i + 1}" for i, d in enumerate(plan.doors) if d.name is None}
    out |= {
        f"staff.{a.id}": f"{t(lang, 'plan.staff')} {i + 1}"
        for i, a in enumerate(plan.staff_areas)
        if a.name is None
    }
    return out


def plan_drawing(ctx: ViewContext, store: StoreInfo) -> charts.PlanDrawing:
    """The store's floor plan as the heatmap draws it: its drawing (if the registry has one), doors and
    staff areas by name (`unnamed_labels` where the registry gives none) and named zones, with translated
    kinds."""
    plan = store.plan
    unnamed = unnamed_labels(ctx.lang, store)
    image = ctx.data.floor_image(store.store_id) if plan.image_extent_m is not None else None
    return charts.PlanDrawing(
        image_png=image,
        image_extent_m=plan.image_extent_m if image is not None else None,
        doors=[(d.name or unnamed[d.id], d.line_m) for d in plan.doors],
        areas=[
            *(("staff", a.name or unnamed[f"staff.{a.id}"], a.polygon_m) for a in plan.staff_areas),
            *((z.kind, z.name, z.polygon_m) for z in plan.zones),
        ],
        kind_labels={k: t(ctx.lang, f"plan.{k}") for k in charts.PLAN_COLOURS},
    )


def _render_zone_comparison(ctx: ViewContext, store: StoreInfo, start: date, end: date) -> None:
    """Each zone of the floor (cars around and inside, reception, negotiation, entrance, staff areas)
    ranked by person-minutes over the period, beside the period of the same length before."""
    lang = ctx.lang
    comparison = ctx.data.zone_comparison(store.store_id, start, end)
    st.subheader(t(lang, "store.zones_compared"))
    if not comparison.zones or not any(f.person_s or f.previous_person_s for f in comparison.zones):
        st.info(t(lang, "store.heatmap_none"))
        return
    st.caption(
        t(
            lang,
            "store.zones_compared_caption",
            start=fmt.day(comparison.start, lang),
            end=fmt.day(comparison.end, lang),
            p_start=fmt.day(comparison.previous_start, lang),
            p_end=fmt.day(comparison.previous_end, lang),
        )
    )
    figures = comparison.zones
    unnamed = unnamed_labels(lang, store)
    show_table(
        lang,
        {
            t(lang, "zone.rank"): [f.rank for f in figures],
            t(lang, "zone.name"): [zone_label(lang, f.zone, unnamed) for f in figures],
            t(lang, "zone.kind"): [t(lang, f"plan.{f.zone.kind}") for f in figures],
            t(lang, "zone.person_min"): [fmt.count(f.person_s / 60) for f in figures],
            t(lang, "zone.share"): [fmt.pct(f.share) for f in figures],
            t(lang, "zone.previous_rank"): [
                "–" if f.previous_rank is None else f.previous_rank for f in figures
            ],
            t(lang, "zone.change"): [fmt.change(f.change) or "–" for f in figures],
        },
        "table_zones_compared",
        static=True,
    )


def _render_cars(ctx: ViewContext, ranking: list[CarStats]) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "store.cars"))
    st.caption(t(lang, "store.cars_caption"))
    if not any(c.browsers or c.entries for c in ranking):
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
        t(lang, "car.browsers"): [fmt.count(c.browsers) for c in ranking],
        t(lang, "car.dwell_total"): [fmt.seconds(c.dwell_total_s, lang) for c in ranking],
        t(lang, "car.dwell_median"): [fmt.seconds(c.dwell_median_s, lang) for c in ranking],
        t(lang, "car.entries"): [fmt.count(c.entries) for c in ranking],
        t(lang, "car.ignored"): ["⚠" if c.browsers == 0 else "" for c in ranking],
    }
    show_table(lang, table, "table_cars", static=True, container=table_col)


def live_now(now: datetime) -> datetime:
    """`now` down to the refresh period: every open page of a store asks the same question (one cache
    entry) within a period."""
    return now.replace(second=now.second - now.second % LIVE_EVERY_S, microsecond=0)


@st.fragment(run_every=LIVE_EVERY_S)
def live_occupancy(ctx: ViewContext, store: StoreInfo) -> None:
    """People on the floor now, refreshed by itself (the rest of the page stays as it is)."""
    lang = ctx.lang
    occ = ctx.data.occupancy_now(store.store_id, live_now(datetime.now(UTC)))
    # The floor count of a recent minute is best; else the visits started and not yet ended.
    fresh = occ.floor_minute is not None and occ.as_of - occ.floor_minute <= OCCUPANCY_FRESH
    shown = occ.floor_occupancy if fresh else occ.open_visits
    as_of = occ.floor_minute if fresh and occ.floor_minute is not None else occ.as_of
    with st.container(key="live_occupancy"):
        st.metric(t(lang, "store.occupancy"), fmt.count(shown))
        st.caption(t(lang, "store.occupancy_as_of", time=fmt.local_time(as_of, store.timezone, lang)))


def zone_label(lang: Lang, zone: FloorZone, unnamed: Mapping[str, str]) -> str:
    """A zone as the table names it: a car's model with 'around' or 'inside', else the plan's name
    (`unnamed`, from `unnamed_labels`, for a staff area without one)."""
    if zone.kind == "car_browse":
        return t(lang, "zone.around", model=zone.label)
    if zone.kind == "car_interior":
        return t(lang, "zone.inside", model=zone.label)
    return unnamed.get(zone.zone_id, zone.label)


def _render_zones_now(ctx: ViewContext, store: StoreInfo, now: datetime) -> None:
    """Visitors in each zone now, from the nodes' latest minute of heat, saying how old that minute is."""
    lang = ctx.lang
    occ = ctx.data.zone_occupancy_now(store.store_id, now)
    st.subheader(t(lang, "store.zones_now"))
    if occ.minute is None:
        st.info(t(lang, "store.zones_now_none", minutes=round(occ.window.total_seconds() / 60)))
        return
    age = max(0.0, (now - (occ.minute + timedelta(minutes=1))).total_seconds())
    st.caption(
        t(
            lang,
            "store.zones_now_caption",
            time=fmt.local_time(occ.minute, store.timezone, lang),
            age=fmt.seconds(age, lang),
            nodes=occ.nodes,
            seconds=LIVE_EVERY_S,
            floor=fmt.number(occ.floor_people),
        )
    )
    if not occ.zones:
        return
    unnamed = unnamed_labels(lang, store)
    show_table(
        lang,
        {
            t(lang, "zone.name"): [zone_label(lang, z.zone, unnamed) for z in occ.zones],
            t(lang, "zone.kind"): [t(lang, f"plan.{z.zone.kind}") for z in occ.zones],
            t(lang, "zone.people"): [fmt.number(z.people) for z in occ.zones],
        },
        "table_zones_now",
        static=True,
    )


@st.fragment(run_every=LIVE_EVERY_S)
def live_zones(ctx: ViewContext, store: StoreInfo) -> None:
    """Visitors in each zone now, then people around each display car and inside it in the current hour
    so far; refreshed by itself."""
    lang = ctx.lang
    now = live_now(datetime.now(UTC))
    _render_zones_now(ctx, store, now)
    hour = now.replace(minute=0, second=0)
    heat = ctx.data.heatmap_hours(store.store_id, hour, hour + timedelta(hours=1))
    st.subheader(t(lang, "store.live_zones"))
    if heat.grid.size == 0 or not np.any(heat.grid > 0) or not store.cars:
        st.info(t(lang, "store.live_zones_none", since=fmt.local_time(hour, store.timezone, lang)))
        return
    around = zone_seconds(
        heat.grid,
        heat.cell_m,
        {c.id: c.browse_zone_m for c in store.cars},
        {c.id: c.interior_zone_m for c in store.cars},
    )
    inside = zone_seconds(heat.grid, heat.cell_m, {c.id: c.interior_zone_m for c in store.cars})
    ranked = sorted(store.cars, key=lambda c: -(around[c.id] + inside[c.id]))
    since = fmt.local_time(hour, store.timezone, lang)
    st.caption(t(lang, "store.live_zones_caption", since=since, seconds=LIVE_EVERY_S))
    show_table(
        lang,
        {
            t(lang, "car.model"): [c.model_name or c.id for c in ranked],
            t(lang, "store.zone_around"): [fmt.count(around[c.id] / 60) for c in ranked],
            t(lang, "store.zone_inside"): [fmt.count(inside[c.id] / 60) for c in ranked],
        },
        "table_live_zones",
        static=True,
    )


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    store = pick_store(ctx)
    if store is None:
        return
    today = store_today(store)
    day = pick_day(ctx, today, ctx.data.first_day(store.store_id))
    start, end = pick_period(ctx, day, key="store")

    head, occupancy_col = st.columns([3, 1])
    with head:
        st.title(t(lang, "store.title", store=store.name, date=fmt.day(day, lang)))
    with occupancy_col:
        live_occupancy(ctx, store)

    # One snapshot (one cache entry) per page, period and minute: no two figures on the page disagree.
    # The live parts ("on the floor now", the current hour per car) refresh by themselves apart from it.
    page = ctx.data.store_page(
        store.store_id, day, start, end, datetime.now(UTC).replace(second=0, microsecond=0)
    )
    funnel = page.funnel
    if page.history is not None:
        st.info(t(lang, "store.history_loading", n=page.history.days_loaded, m=page.history.days_total))
    render_funnel(lang, funnel, is_today=day == today)
    if day == today:
        live_zones(ctx, store)
    _render_audit(ctx, store, page.last_audit)
    _render_hourly(ctx, store, page.hourly)
    period = t(lang, "store.period_summary", start=fmt.day(start, lang), end=fmt.day(end, lang))
    st.caption(period)
    _render_heatmap(ctx, store, page.heatmap)
    _render_zone_comparison(ctx, store, start, end)
    _render_cars(ctx, page.cars)
    render_health(lang, page.health, store.name)
    title = t(lang, "store.title", store=store.name, date=fmt.day(day, lang))
    _report_buttons(lang, title, [*funnel_lines(lang, funnel), period], f"{store.store_id}-{day.isoformat()}")


def funnel_lines(lang: Lang, funnel: Funnel) -> list[str]:
    """The funnel's figures as report lines: 'Visitors: 59 (+68.57% day-over-day, +18.00% week-over-week)'."""
    lines = []
    for key, attr, is_rate in FUNNEL_FIGURES:
        value = getattr(funnel.today, attr)
        if is_rate:
            shown = fmt.pct(value)
            unit = t(lang, "store.points")
            dod = fmt.points(value, _rate(funnel.day_before, attr), unit=unit)
            wow = fmt.points(value, _rate(funnel.week_before, attr), unit=unit)
        else:
            shown = fmt.count(value)
            dod, wow = fmt.change(getattr(funnel.dod, attr)), fmt.change(getattr(funnel.wow, attr))
        changes = (
            f"{dod or '–'} {t(lang, 'store.vs_yesterday')}, {wow or '–'} {t(lang, 'store.vs_last_week')}"
        )
        lines.append(f"{t(lang, key)}: {shown} ({changes})")
    return lines


def _report_buttons(lang: Lang, title: str, lines: list[str], name: str) -> None:
    """Download the page as a report: its figures and the charts it drew, made when the button is pressed
    (rendering takes about a second, which the page itself does not pay)."""
    charts_drawn = list(st.session_state.get(CHARTS_SHOWN, {}).values())
    pdf_col, png_col = st.columns(2)
    pdf_col.download_button(
        t(lang, "export.report"),
        data=lambda: report_pdf(title, lines, charts_drawn),
        file_name=f"{name}.pdf",
        mime="application/pdf",
        key="report_pdf",
        on_click="ignore",
        icon=":material/picture_as_pdf:",
    )
    png_col.download_button(
        t(lang, "export.report_png"),
        data=lambda: report_png(title, lines, charts_drawn),
        file_name=f"{name}.png",
        mime="image/png",
        key="report_png",
        on_click="ignore",
        icon=":material/image:",
    )
