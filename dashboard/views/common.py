"""What every view shares: its context, the store, day and period pickers (URL-backed, access-checked)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import streamlit as st

from aggregator.queries import StoreInfo
from dashboard import charts
from dashboard import format as fmt
from dashboard.auth import User
from dashboard.data import ScopedData
from dashboard.i18n import Lang, t

CHARTS_SHOWN = "charts_shown"
"""Session key: the Vega-Lite specs of the charts drawn in this rerun, by chart key (server side only)."""
PERIODS = ("day", "week", "month", "custom")
PERIOD_DAYS = {"day": 1, "week": 7, "month": 30}


@dataclass(frozen=True)
class ViewContext:
    user: User
    lang: Lang
    data: ScopedData


@st.cache_data(max_entries=200, show_spinner=False)
def _svg(spec_json: str) -> str:
    # At most a few tens of MB: a heatmap's SVG (with its PNG) is 30-600 KB, other charts 10-30 KB.
    return charts.to_svg(json.loads(spec_json))


def show_chart(spec: Mapping[str, Any], key: str, *, alt: str, container: object = st) -> None:
    """Show a chart drawn on the server (`charts.to_svg`, cached per spec) as an SVG picture.

    The spec is also kept for this rerun under `CHARTS_SHOWN` in the session, so what a page drew can be
    checked against the aggregator's figures.
    """
    as_dict = dict(spec)
    st.session_state.setdefault(CHARTS_SHOWN, {})[key] = as_dict
    container.image(_svg(json.dumps(as_dict, sort_keys=True)), alt=alt)  # type: ignore[attr-defined]


_URL_WRITTEN = "url_written"
"""Session key: the value this session last wrote to each URL parameter."""
_URL_PENDING = "url_pending"
"""Session key: URL parameters chosen in this run, written together by `write_url` at its end."""


def set_param(name: str, value: str) -> None:
    """Put a view's choice in the URL (at the end of the run: see `write_url`)."""
    st.session_state.setdefault(_URL_WRITTEN, {})[name] = value
    st.session_state.setdefault(_URL_PENDING, {})[name] = value


def write_url() -> None:
    """Write this run's choices to the URL at once: one browser history entry per change of view, so Back
    returns to the previous view, not to a half-written URL."""
    # Popped: a run that stops early (an error, a rerun) leaves nothing for the next one.
    pending: dict[str, str] = st.session_state.pop(_URL_PENDING, {})
    changed = {k: v for k, v in pending.items() if st.query_params.get(k) != v}
    if changed:
        st.query_params.update(changed)


def follow_url(name: str, widget_key: str, value: object) -> None:
    """Before drawing the widget behind URL parameter `name`: show `value` (what the URL asks for) when
    the widget is new or the URL changed from outside since this session wrote it (Back, Forward, an
    edited link). Otherwise the widget keeps what the person chose."""
    requested = st.query_params.get(name)
    written = st.session_state.setdefault(_URL_WRITTEN, {}).get(name)
    if widget_key not in st.session_state or (requested is not None and requested != written):
        st.session_state[widget_key] = value


def pick_store(ctx: ViewContext, container: object = st.sidebar) -> StoreInfo | None:
    """The store to show: the URL's `store` if the user may see it, else their first store.

    A `store` in the URL that the user may not see is refused outright (an error, nothing else), so
    tampering with the URL never falls back to showing something silently.
    """
    stores = ctx.data.stores()
    requested = st.query_params.get("store")
    ids = [s.store_id for s in stores]
    if requested is not None and requested not in ids:
        st.error(t(ctx.lang, "access.denied_store", store=requested))
        return None
    if not stores:
        st.warning(t(ctx.lang, "access.no_stores"))
        return None
    by_id = {s.store_id: s for s in stores}
    follow_url("store", "pick_store", requested if requested in ids else ids[0])
    chosen: str = container.selectbox(  # type: ignore[attr-defined]
        t(ctx.lang, "pick.store"),
        options=ids,
        format_func=lambda sid: f"{by_id[sid].name} ({sid})",
        key="pick_store",
    )
    set_param("store", chosen)
    return by_id[chosen]


def open_store(store_id: str) -> None:
    """Switch to `store_id`'s store page now (the URL names the view and the store, as a link would)."""
    st.query_params.update({"view": "store", "store": store_id})
    st.rerun()


def store_today(store: StoreInfo) -> date:
    """Today's date in the store's own time zone."""
    return datetime.now(ZoneInfo(store.timezone)).date()


HISTORY_PICK_DAYS = 400
"""How far back a day picker without a first day of history offers (the API's longest period)."""


def day_input(
    lang: Lang, container: object, label: str, key: str, first: date | None, last: date
) -> date | None:
    """A day between `first` (default `HISTORY_PICK_DAYS` before `last`) and `last`, kept under `key`. In
    English Streamlit's calendar; in Chinese a list of the days, newest first, written in Chinese (the
    calendar has no locale and names its months and weekdays in English: streamlit/streamlit#12699)."""
    if lang != "zh":
        picked = container.date_input(  # type: ignore[attr-defined]
            label, min_value=first, max_value=last, key=key, format="YYYY-MM-DD"
        )
        return picked if isinstance(picked, date) else None
    earliest = min(first or last - timedelta(days=HISTORY_PICK_DAYS), last)
    days = [last - timedelta(days=i) for i in range((last - earliest).days + 1)]
    # Set, not left to the widget: after a switch from English the calendar's state would not carry over.
    chosen = st.session_state.get(key)
    st.session_state[key] = chosen if chosen in days else days[0]
    picked = container.selectbox(  # type: ignore[attr-defined]
        label, days, format_func=lambda d: fmt.day_with_weekday(d, lang), key=key
    )
    return picked if isinstance(picked, date) else None


def pick_day(ctx: ViewContext, today: date, first: date | None, container: object = st.sidebar) -> date:
    """The day to show: the URL's `date`, else today in the store's time zone. A date that is not one,
    before the store's history (`first`, its first day with figures) or after today is refused with a
    message, and today is shown instead."""
    lang = ctx.lang
    earliest = min(first or today, today)
    requested = st.query_params.get("date")
    initial = today
    if requested:
        try:
            asked = date.fromisoformat(requested)
        except ValueError:
            st.error(t(lang, "pick.bad_date", day=requested, shown=fmt.day(today, lang)))
        else:
            if asked < earliest:
                shown = fmt.day(today, lang)
                st.error(
                    t(lang, "pick.before_history", day=asked, first=fmt.day(earliest, lang), shown=shown)
                )
            elif asked > today:
                st.error(t(lang, "pick.after_today", day=fmt.day(asked, lang), shown=fmt.day(today, lang)))
            else:
                initial = asked
    follow_url("date", "pick_date", initial)
    if not earliest <= st.session_state["pick_date"] <= today:
        st.session_state["pick_date"] = initial
    chosen = day_input(lang, container, t(lang, "pick.date"), "pick_date", earliest, today)
    day = chosen if chosen is not None else initial
    set_param("date", day.isoformat())
    return day


def pick_period(
    ctx: ViewContext, end_day: date, key: str, container: object = st.sidebar
) -> tuple[date, date]:
    """A period ending on `end_day`: the day, the last 7 or 30 days, or a custom range."""
    requested = st.query_params.get("period")
    initial = requested if requested in PERIODS else "week"
    follow_url("period", f"{key}_period", initial)
    kind = container.segmented_control(  # type: ignore[attr-defined]
        t(ctx.lang, "pick.period"),
        options=list(PERIODS),
        format_func=lambda p: t(ctx.lang, f"period.{p}"),
        key=f"{key}_period",
        required=True,
    )
    kind = kind if kind in PERIODS else initial
    set_param("period", kind)
    if kind != "custom":
        return end_day - timedelta(days=PERIOD_DAYS[kind] - 1), end_day
    if ctx.lang == "zh":  # two lists of days (the calendar speaks English only, see `day_input`)
        st.session_state.setdefault(f"{key}_range_start", end_day - timedelta(days=13))
        start = day_input(
            ctx.lang, container, t(ctx.lang, "pick.range_start"), f"{key}_range_start", None, end_day
        )
        return (start or end_day), end_day
    picked = container.date_input(  # type: ignore[attr-defined]
        t(ctx.lang, "pick.period"),
        value=(end_day - timedelta(days=13), end_day),
        max_value=end_day,
        key=f"{key}_range",
        format="YYYY-MM-DD",
    )
    if isinstance(picked, tuple) and len(picked) == 2:
        start, end = picked
        return start, end
    return end_day, end_day


def table_csv(columns: Mapping[str, Sequence[object]]) -> bytes:
    """A table as CSV: UTF-8 with a byte-order mark, so spreadsheet programs read Chinese correctly;
    missing values empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    names = list(columns)
    writer.writerow(names)
    rows = zip(*(columns[n] for n in names), strict=True)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def show_table(
    lang: Lang,
    columns: Mapping[str, Sequence[object]],
    key: str,
    *,
    static: bool = False,
    container: object = st,
    column_config: Mapping[str, Any] | None = None,
) -> None:
    """A table (a scrollable data frame, or a plain table when `static`) with its CSV download below."""
    data = {name: list(values) for name, values in columns.items()}
    if static:
        container.table(data, hide_index=True)  # type: ignore[attr-defined]
    else:
        container.dataframe(  # type: ignore[attr-defined]
            data, hide_index=True, key=key, column_config=dict(column_config or {})
        )
    container.download_button(  # type: ignore[attr-defined]
        t(lang, "export.csv"),
        data=table_csv(data),
        file_name=f"{key.removeprefix('table_')}.csv",
        mime="text/csv",
        key=f"csv_{key}",
        on_click="ignore",
        icon=":material/download:",
    )
