"""Brand HQ view: league table with filters and sorting, health radar against brand TOP and average,
daily trends, stores whose door-count audit is missing or stale, and stores whose data went silent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import streamlit as st

from aggregator.audit import STALE_AFTER
from aggregator.queries import LeagueRow
from dashboard import charts
from dashboard import format as fmt
from dashboard.health_view import render_health
from dashboard.i18n import TABLES, Lang, t
from dashboard.views.common import (
    ViewContext,
    follow_url,
    pick_period,
    set_param,
    show_chart,
    show_table,
)

SILENT_AFTER = timedelta(hours=2)
AUDITS_SHOWN = 10
ALL = "__all__"
# Sort keys of the league table: (i18n key, value of a row; None sorts last).
SORTS: dict[str, tuple[str, str]] = {
    "health": ("m.health", "health"),
    "visitors": ("m.visitors", "visitors"),
    "browse_rate": ("m.browse_rate", "browse_rate"),
    "car_entry_rate": ("m.car_entry_rate", "car_entry_rate"),
    "reception_rate": ("m.reception_rate", "reception_rate"),
}
TREND_FIGURES = (
    "visitors",
    "car_browsers",
    "car_entrants",
    "browse_rate",
    "car_entry_rate",
    "reception_rate",
)


def query_minute(now: datetime) -> datetime:
    """`now` to the minute: the time the audit and silent-store lists are asked for. Within a minute the
    query (and so the dashboard's cache entry) is the same, so repeated page runs are served from the
    cache; audits go stale after days and stores fall silent after hours, so a minute changes nothing."""
    return now.replace(second=0, microsecond=0)


def _sort_value(row: LeagueRow, sort: str) -> float | None:
    if sort == "health":
        return row.health
    value = getattr(row.figures, SORTS[sort][1])
    return None if value is None else float(value)


def region_name(lang: Lang, region: str) -> str:
    """A region as written in `lang` (the registry's usual region ids are translated; others as given)."""
    key = f"region.{region.lower()}"
    return t(lang, key) if key in TABLES[lang] else region


def league_columns(lang: Lang) -> dict[str, Any]:
    """Counts with thousands separators in the reader's locale, kept numeric so the table sorts them."""
    counts = ("m.visitors", "m.car_browsers", "m.car_entrants")
    config: dict[str, Any] = {t(lang, k): st.column_config.NumberColumn(format="localized") for k in counts}
    config[t(lang, "m.health")] = st.column_config.NumberColumn(format="%.1f")
    return config


def league_frame(lang: Lang, rows: list[LeagueRow], sort: str) -> dict[str, list[Any]]:
    """The league table as shown: best first by `sort`, rates as percentages, health to one decimal."""
    ordered = sorted(rows, key=lambda r: (_sort_value(r, sort) is None, -(_sort_value(r, sort) or 0.0)))
    return {
        "#": list(range(1, len(ordered) + 1)),
        t(lang, "hq.store"): [r.store.store_id for r in ordered],
        t(lang, "hq.name"): [r.store.name for r in ordered],
        t(lang, "hq.brand"): [r.store.brand for r in ordered],
        t(lang, "hq.region"): [region_name(lang, r.store.region) for r in ordered],
        t(lang, "m.visitors"): [r.figures.visitors for r in ordered],
        t(lang, "m.car_browsers"): [r.figures.car_browsers for r in ordered],
        t(lang, "m.car_entrants"): [r.figures.car_entrants for r in ordered],
        t(lang, "m.browse_rate"): [fmt.pct(r.figures.browse_rate) for r in ordered],
        t(lang, "m.car_entry_rate"): [fmt.pct(r.figures.car_entry_rate) for r in ordered],
        t(lang, "m.reception_rate"): [fmt.pct(r.figures.reception_rate) for r in ordered],
        t(lang, "m.median_visit"): [fmt.seconds(r.figures.median_visit_s, lang) for r in ordered],
        t(lang, "m.health"): [None if r.health is None else round(r.health, 1) for r in ordered],
    }


def _filters(ctx: ViewContext) -> tuple[str | None, str | None, date, date]:
    lang = ctx.lang
    stores = ctx.data.stores()
    brands = sorted(ctx.user.brands)
    regions = sorted({s.region for s in stores if s.region})
    latest = max((datetime.now(UTC).date(),), default=datetime.now(UTC).date())
    with st.sidebar:
        brand = st.selectbox(
            t(lang, "hq.brand"),
            [ALL, *brands] if len(brands) > 1 else brands,
            format_func=lambda b: t(lang, "hq.all") if b == ALL else b,
            key="hq_brand",
        )
        region = st.selectbox(
            t(lang, "hq.region"),
            [ALL, *regions],
            format_func=lambda r: t(lang, "hq.all") if r == ALL else region_name(lang, r),
            key="hq_region",
        )
        requested = st.query_params.get("date")
        try:
            end_initial = date.fromisoformat(requested) if requested else latest
        except ValueError:
            end_initial = latest
        follow_url("date", "hq_end", min(end_initial, latest))
        end_day = st.date_input(t(lang, "pick.period_end"), max_value=latest, key="hq_end")
        end_day = end_day if isinstance(end_day, date) else latest
        set_param("date", end_day.isoformat())
        start, end = pick_period(ctx, end_day, key="hq")
    return (None if brand == ALL else brand), (None if region == ALL else region), start, end


def _render_trends(
    ctx: ViewContext, store_ids: list[str], names: dict[str, str], start: date, end: date
) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "hq.trends"))
    figure = st.segmented_control(
        t(lang, "hq.trend_metric"),
        options=list(TREND_FIGURES),
        default="visitors",
        format_func=lambda f: t(lang, f"m.{f}"),
        key="hq_trend_metric",
        required=True,
    )
    figure = figure or "visitors"
    dates: list[date] = []
    series: list[tuple[str, list[float | None]]] = []
    for store_id in store_ids:
        days = ctx.data.daily_series(store_id, start, end)
        dates = [d.day for d in days]
        values: list[float | None] = []
        for d in days:
            # A day still in progress is left out: its figures so far would read as a collapse.
            v = getattr(d.figures, figure) if d.has_data and not d.partial else None
            values.append(None if v is None else float(v) * (100 if "rate" in figure else 1))
        series.append((names.get(store_id, store_id), values))
    if not dates or all(v is None for _, values in series for v in values):
        st.info(t(lang, "empty"))  # words, not empty axes
        return
    label = t(lang, f"m.{figure}") + (" (%)" if "rate" in figure else "")
    show_chart(charts.trend_chart(dates, series, value_label=label), "chart_trends", alt=label)


def _render_audits(ctx: ViewContext) -> None:
    """Stores whose door count was never audited, or not within `STALE_AFTER`."""
    lang, days = ctx.lang, STALE_AFTER.days
    st.subheader(t(lang, "hq.audits"))
    every = [a for a in ctx.data.audit_status(query_minute(datetime.now(UTC))) if a.stale]
    if not every:
        st.success(t(lang, "hq.audits_none", days=days))
        return
    never = sum(1 for a in every if a.last is None)
    st.caption(
        t(lang, "hq.audits_due", never=never, stale=len(every) - never, shown=min(len(every), AUDITS_SHOWN))
    )
    stale = every[:AUDITS_SHOWN]  # never audited first, then the oldest audits
    zones = {s.store_id: s.timezone for s in ctx.data.stores()}
    # Lists of stores are data frames: a plain table renders every cell as markdown in the browser.
    show_table(
        lang,
        {
            t(lang, "hq.store"): [a.store_id for a in stale],
            t(lang, "hq.name"): [a.name or "" for a in stale],
            t(lang, "hq.audit_last"): [
                # The audit's day in the store's own time zone, as on the store page.
                "" if a.last is None else fmt.local_day(a.last.end, zones.get(a.store_id, "UTC"))
                for a in stale
            ],
            t(lang, "hq.audit_accuracy"): ["" if a.last is None else fmt.pct(a.last.accuracy) for a in stale],
            t(lang, "hq.reason"): [
                t(lang, "hq.reason_never_audited")
                if a.last is None
                else t(lang, "hq.reason_audit_stale", days=days)
                for a in stale
            ],
        },
        "table_audits",
    )


def _render_silent(ctx: ViewContext) -> None:
    lang = ctx.lang
    st.subheader(t(lang, "hq.silent"))
    silent = ctx.data.silent_stores(query_minute(datetime.now(UTC)), SILENT_AFTER)
    if not silent:
        st.success(t(lang, "hq.silent_none"))
        return
    show_table(
        lang,
        {
            t(lang, "hq.store"): [s.store_id for s in silent],
            t(lang, "hq.name"): [s.name or "" for s in silent],
            t(lang, "hq.silent_since"): [fmt.utc_time(s.last_seen_at) for s in silent],
            t(lang, "hq.reason"): [t(lang, "hq.reason_silent") for _ in silent],
        },
        "table_silent",
    )


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    brand, region, start, end = _filters(ctx)
    st.title(t(lang, "hq.title"))
    st.caption(t(lang, "store.period_summary", start=start.isoformat(), end=end.isoformat()))

    rows = ctx.data.league(start, end, brand=brand, region=region)
    st.subheader(t(lang, "hq.league"))
    sort = st.selectbox(
        t(lang, "hq.sort"), list(SORTS), format_func=lambda s: t(lang, SORTS[s][0]), key="hq_sort"
    )
    st.caption(t(lang, "hq.stores_count", count=len(rows)))
    if any(r.partial for r in rows):
        st.caption(t(lang, "hq.partial", day=end.isoformat()))
    sizes = Counter(r.store.brand for r in rows)
    if len(sizes) > 1:
        # Each score is measured against its own brand's TOP: scores of different brands do not compare.
        per_brand = ", ".join(f"{b} {fmt.count(n)}" for b, n in sorted(sizes.items()))
        st.caption(t(lang, "hq.health_per_brand", brands=per_brand))
    show_table(lang, league_frame(lang, rows, sort), "table_league", column_config=league_columns(lang))

    if not rows:
        return
    names = {r.store.store_id: r.store.name for r in rows}
    ids = [r.store.store_id for r in rows]
    chosen = st.selectbox(
        t(lang, "pick.store"), ids, format_func=lambda s: f"{names[s]} ({s})", key="hq_store"
    )
    render_health(ctx.lang, ctx.data.health(chosen, start, end), names[chosen])
    compare = st.multiselect(
        t(lang, "hq.compare"),
        ids,
        default=ids[: min(3, len(ids))],
        format_func=lambda s: names[s],
        max_selections=8,
        key="hq_trend_stores",
    )
    _render_trends(ctx, list(compare), names, start, end)
    _render_audits(ctx)
    _render_silent(ctx)
