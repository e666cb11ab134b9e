"""Brand HQ view: the league (each store's change against the period before, its health rank within its
brand, the stores that need a look, partial and missing days) with totals per brand and region; a row
opens that store's page. Then the health radar against brand TOP and average, daily trends, stores
whose door-count audit is missing or stale, and stores whose data went silent."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import streamlit as st

from aggregator.audit import STALE_AFTER
from aggregator.league import GroupTotal, LeagueEntry, LeagueReport
from dashboard import charts
from dashboard import format as fmt
from dashboard.health_view import render_health
from dashboard.i18n import TABLES, Lang, t
from dashboard.views.common import (
    ViewContext,
    day_input,
    follow_url,
    open_store,
    pick_period,
    set_param,
    show_chart,
    show_table,
    table_csv,
)

SILENT_AFTER = timedelta(hours=2)
AUDITS_SHOWN = 10
ALL = "__all__"
OPENED = "hq_opened"
"""Session key: the store whose league row this session last acted on (None: no row selected)."""
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


def _sort_value(entry: LeagueEntry, sort: str) -> float | None:
    if sort == "health":
        return entry.health
    value = getattr(entry.counts, SORTS[sort][1])
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


def sorted_entries(entries: tuple[LeagueEntry, ...], sort: str) -> list[LeagueEntry]:
    """Best first by `sort`; stores without the figure last (a stable sort keeps the report's order)."""
    return sorted(entries, key=lambda e: (_sort_value(e, sort) is None, -(_sort_value(e, sort) or 0.0)))


def flags(lang: Lang, entry: LeagueEntry) -> str:
    """Why a store needs a look, in words: its outliers, a last day in progress, days without data."""
    words = [t(lang, f"hq.flag_{o}") for o in entry.outliers]
    if entry.partial:
        words.append(t(lang, "hq.flag_partial", time=entry.compared_until or "–"))
    if entry.missing_days:
        words.append(t(lang, "hq.flag_missing", days=entry.missing_days))
    return "; ".join(words)


def _pp(lang: Lang, value: float | None) -> str:
    """A change already in percentage points, signed ('+2.70 pp', '+2.70 个百分点'); '–' without a
    previous period."""
    return "–" if value is None else (fmt.points(value / 100, 0.0, unit=t(lang, "store.points")) or "–")


def _rates(lang: Lang, counts: list[Any], changes: list[Any]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for rate in ("browse_rate", "car_entry_rate", "reception_rate"):
        figure = t(lang, f"m.{rate}")
        columns[figure] = [fmt.pct(getattr(c, rate)) for c in counts]
        columns[t(lang, "hq.change_pp", figure=figure)] = [
            _pp(lang, getattr(c, f"{rate}_pp")) for c in changes
        ]
    return columns


def league_frame(lang: Lang, entries: list[LeagueEntry]) -> dict[str, list[Any]]:
    """The league table as shown: counts with their % change, rates with their change in points, health
    with its change, rank within the brand of the brand's size, and what needs a look."""
    visitors = t(lang, "m.visitors")
    health = t(lang, "m.health")
    return {
        "#": list(range(1, len(entries) + 1)),
        t(lang, "hq.store"): [e.store_id for e in entries],
        t(lang, "hq.name"): [e.name for e in entries],
        t(lang, "hq.brand"): [e.brand for e in entries],
        t(lang, "hq.region"): [region_name(lang, e.region) for e in entries],
        visitors: [e.counts.visitors for e in entries],
        t(lang, "hq.change_pct", figure=visitors): [fmt.change(e.change.visitors) or "–" for e in entries],
        t(lang, "m.car_browsers"): [e.counts.car_browsers for e in entries],
        t(lang, "m.car_entrants"): [e.counts.car_entrants for e in entries],
        **_rates(lang, [e.counts for e in entries], [e.change for e in entries]),
        health: [None if e.health is None else round(e.health, 1) for e in entries],
        t(lang, "hq.change_pp", figure=health): [
            "–" if e.change.health_points is None else f"{e.change.health_points:+.1f}" for e in entries
        ],
        t(lang, "hq.rank"): [
            "–" if e.brand_rank is None else t(lang, "hq.rank_of", rank=e.brand_rank, size=e.brand_size)
            for e in entries
        ],
        t(lang, "hq.flags"): [flags(lang, e) for e in entries],
    }


def totals_frame(lang: Lang, groups: tuple[GroupTotal, ...]) -> dict[str, list[Any]]:
    """Totals of a brand's or a region's stores, with their change against the period before."""
    kind = "hq.brand" if groups and groups[0].kind == "brand" else "hq.region"
    visitors = t(lang, "m.visitors")
    return {
        t(lang, kind): [g.key if g.kind == "brand" else region_name(lang, g.key) for g in groups],
        t(lang, "hq.stores"): [g.stores for g in groups],
        visitors: [g.counts.visitors for g in groups],
        t(lang, "hq.change_pct", figure=visitors): [fmt.change(g.change.visitors) or "–" for g in groups],
        **_rates(lang, [g.counts for g in groups], [g.change for g in groups]),
        t(lang, "hq.outlier_stores"): [g.outlier_stores for g in groups],
    }


def _render_league(ctx: ViewContext, report: LeagueReport, sort: str) -> None:
    """The league table; selecting a row opens that store's page."""
    lang = ctx.lang
    entries = sorted_entries(report.entries, sort)
    frame = league_frame(lang, entries)
    st.caption(t(lang, "hq.open_hint"))
    event = st.dataframe(
        frame,
        hide_index=True,
        key="table_league",
        column_config=league_columns(lang),
        on_select="rerun",
        selection_mode="single-row",
    )
    st.download_button(
        t(lang, "export.csv"),
        data=table_csv(frame),
        file_name="league.csv",
        mime="text/csv",
        key="csv_table_league",
        on_click="ignore",
        icon=":material/download:",
    )
    rows = list(event.selection.rows) if event is not None else []
    chosen = entries[rows[0]].store_id if rows and 0 <= rows[0] < len(entries) else None
    # Acted on once per selection: back on this page, the row still selected does not open it again.
    if chosen != st.session_state.get(OPENED):
        st.session_state[OPENED] = chosen
        if chosen is not None:
            open_store(chosen)


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
        end_day = day_input(lang, st.sidebar, t(lang, "pick.period_end"), "hq_end", None, latest) or latest
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
    show_chart(
        charts.trend_chart(dates, series, value_label=label, day_format=t(lang, "chart.day_format")),
        "chart_trends",
        alt=label,
    )


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
                "" if a.last is None else fmt.local_day(a.last.end, zones.get(a.store_id, "UTC"), lang)
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
            t(lang, "hq.silent_since"): [fmt.utc_time(s.last_seen_at, lang) for s in silent],
            t(lang, "hq.reason"): [t(lang, "hq.reason_silent") for _ in silent],
        },
        "table_silent",
    )


def render(ctx: ViewContext) -> None:
    lang = ctx.lang
    brand, region, start, end = _filters(ctx)
    st.title(t(lang, "hq.title"))
    st.caption(t(lang, "store.period_summary", start=fmt.day(start, lang), end=fmt.day(end, lang)))

    report = ctx.data.league_report(start, end, query_minute(datetime.now(UTC)), brand=brand, region=region)
    rows = report.entries
    st.subheader(t(lang, "hq.league"))
    sort = st.selectbox(
        t(lang, "hq.sort"), list(SORTS), format_func=lambda s: t(lang, SORTS[s][0]), key="hq_sort"
    )
    st.caption(t(lang, "hq.stores_count", count=len(rows)))
    prev = (fmt.day(report.previous_start, lang), fmt.day(report.previous_end, lang))
    st.caption(t(lang, "hq.compared_with", start=prev[0], end=prev[1]))
    if any(r.partial for r in rows):
        st.caption(t(lang, "hq.partial", day=fmt.day(end, lang)))
    sizes = Counter(r.brand for r in rows)
    if len(sizes) > 1:
        # Each score is measured against its own brand's TOP: scores of different brands do not compare.
        per_brand = ", ".join(f"{b} {fmt.count(n)}" for b, n in sorted(sizes.items()))
        st.caption(t(lang, "hq.health_per_brand", brands=per_brand))
    _render_league(ctx, report, sort)
    if not rows:
        return
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{t(lang, 'hq.totals_brand')}**")
        show_table(lang, totals_frame(lang, report.brands), "table_brand_totals")
    with right:
        st.markdown(f"**{t(lang, 'hq.totals_region')}**")
        show_table(lang, totals_frame(lang, report.regions), "table_region_totals")

    names = {r.store_id: r.name for r in rows}
    ids = [r.store_id for r in sorted_entries(rows, "health")]
    chosen = st.selectbox(
        t(lang, "pick.store"), ids, format_func=lambda s: f"{names[s]} ({s})", key="hq_store"
    )
    if st.button(t(lang, "hq.open_store"), key="hq_open_store"):
        open_store(chosen)
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
