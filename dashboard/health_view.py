"""The health score as shown: radar (0-100) against brand TOP and average, and the per-dimension table."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from aggregator.queries import Health
from dashboard import charts
from dashboard import format as fmt
from dashboard.i18n import Lang, t
from dashboard.views.common import show_chart

RATE_DIMENSIONS = {"activity", "car_entry", "reception"}


def dimension_value(name: str, value: float | None) -> str:
    """A dimension's raw value in its own unit (rates in %, visit length in time, others as numbers)."""
    if value is None:
        return "–"
    if name in RATE_DIMENSIONS:
        return fmt.pct(value)
    if name == "attractiveness":
        return fmt.seconds(value)
    return f"{value:,.1f}"


def _score_of(value: float | None, top: float | None) -> float:
    # DOMAIN.md: min(100, 100 * value / brand_top); TOP itself scores 100 by construction.
    if value is None or top is None:
        return 0.0
    if top <= 0:
        return 0.0
    return min(100.0, 100.0 * value / top)


def radar_series(lang: Lang, health: Health) -> Sequence[tuple[str, Sequence[float], str]]:
    """Three closed traces on the 0-100 score scale: this store, brand TOP and brand average."""
    store = [d.score or 0.0 for d in health.dimensions]
    top = [_score_of(d.brand_top, d.brand_top) for d in health.dimensions]
    avg = [_score_of(d.brand_average, d.brand_top) for d in health.dimensions]
    return [
        (t(lang, "health.top"), top, charts.GREY),
        (t(lang, "health.avg"), avg, charts.ORANGE),
        (t(lang, "health.store"), store, charts.BLUE),
    ]


def dimension_rows(lang: Lang, health: Health) -> dict[str, list[str]]:
    """Table columns: dimension, this store's value, brand TOP, brand average, score."""
    dims = health.dimensions
    return {
        t(lang, "health.dimension"): [t(lang, f"dim.{d.name}") for d in dims],
        t(lang, "health.store"): [dimension_value(d.name, d.value) for d in dims],
        t(lang, "health.top"): [dimension_value(d.name, d.brand_top) for d in dims],
        t(lang, "health.avg"): [dimension_value(d.name, d.brand_average) for d in dims],
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
                [t(lang, f"dim.{d.name}") for d in health.dimensions], radar_series(lang, health)
            ),
            "chart_radar",
            alt=t(lang, "health.title", store=store_name),
        )
    with right:
        st.table(dimension_rows(lang, health), hide_index=True)
        st.caption(t(lang, "health.caption", stores=health.brand_stores))
