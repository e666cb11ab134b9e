"""The health score as shown: radar (0-100) against brand TOP and average, and the per-dimension table."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from aggregator.queries import Health
from dashboard import charts
from dashboard import format as fmt
from dashboard.i18n import Lang, t
from dashboard.views.common import show_chart, show_table

RATE_DIMENSIONS = {"activity", "car_entry", "reception"}


def dimension_value(name: str, value: float | None, lang: Lang = "en") -> str:
    """A dimension's raw value in its own unit: rates in %, visit length as a duration, traffic in
    visitors a day, heat in person-seconds per car and open hour."""
    if value is None:
        return "–"
    if name in RATE_DIMENSIONS:
        return fmt.pct(value)
    if name == "attractiveness":
        return fmt.seconds(value, lang)
    if name == "traffic":
        return t(lang, "unit.per_day", value=f"{value:,.1f}")
    if name == "heat":
        return t(lang, "unit.per_car_hour", value=f"{value:,.1f}")
    return f"{value:,.1f}"


def of_top(value: float | None, top: float | None) -> float | None:
    """A value in % of the brand's TOP, not capped (a store above TOP is above 100); None without both."""
    if value is None or top is None or top <= 0:
        return None
    return 100.0 * value / top


def top_label(lang: Lang, health: Health) -> str:
    """'Brand TOP (90th percentile of 3 stores)': what TOP is, and on how many stores it stands."""
    return t(lang, "health.top_of", stores=health.brand_stores)


def radar_series(lang: Lang, health: Health) -> Sequence[tuple[str, Sequence[float], str]]:
    """Three closed traces in % of brand TOP (TOP = 100): brand TOP, brand average and this store,
    uncapped, so a store above TOP is drawn outside TOP's ring instead of hiding it."""
    dims = health.dimensions
    top = [100.0 if d.brand_top else 0.0 for d in dims]
    avg = [of_top(d.brand_average, d.brand_top) or 0.0 for d in dims]
    store = [of_top(d.value, d.brand_top) or 0.0 for d in dims]
    return [
        (top_label(lang, health), top, charts.GREY),
        (t(lang, "health.avg"), avg, charts.ORANGE),
        (t(lang, "health.store"), store, charts.BLUE),
    ]


def dimension_rows(lang: Lang, health: Health) -> dict[str, list[str]]:
    """Table columns: dimension, this store's value, brand TOP, brand average, the store in % of TOP
    (uncapped) and the score (capped at 100, as the health score counts it)."""
    dims = health.dimensions
    return {
        t(lang, "health.dimension"): [t(lang, f"dim.{d.name}") for d in dims],
        t(lang, "health.store"): [dimension_value(d.name, d.value, lang) for d in dims],
        t(lang, "health.top"): [dimension_value(d.name, d.brand_top, lang) for d in dims],
        t(lang, "health.avg"): [dimension_value(d.name, d.brand_average, lang) for d in dims],
        t(lang, "health.of_top"): [fmt.pct_of(of_top(d.value, d.brand_top)) for d in dims],
        t(lang, "health.score"): ["–" if d.score is None else f"{d.score:.1f}" for d in dims],
    }


def render_health(lang: Lang, health: Health, store_name: str) -> None:
    """Health score, radar and table of one store for one period."""
    st.subheader(t(lang, "health.title", store=store_name))
    if health.score is None:
        st.info(t(lang, "health.none"))
        return
    left, right = st.columns([1, 1])
    with left:
        st.metric(t(lang, "m.health"), f"{health.score:.1f}")
        show_chart(
            charts.radar_chart(
                [t(lang, f"dim.{d.name}") for d in health.dimensions],
                radar_series(lang, health),
                scale_title=t(lang, "health.radar_scale"),
            ),
            "chart_radar",
            alt=t(lang, "health.title", store=store_name),
        )
    with right:
        show_table(lang, dimension_rows(lang, health), "table_health", static=True)
        st.caption(t(lang, "health.caption", stores=health.brand_stores))
