"""Charts for the views, as Vega-Lite (Altair, which Streamlit already ships). Pure functions, no data access.

Vega-Lite rather than a heavier plotting library: a page's charts must draw within the page's 2 s budget
on a tablet. Inputs are plain sequences already scoped and fetched by the view; labels arrive translated.
The floor heatmap is one PNG layer (coloured on the server) under vector car outlines, so its cost does not
grow with the number of floor cells.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

import altair as alt
import numpy as np
import numpy.typing as npt

# One palette for every chart so "this store" and "last week" look the same everywhere.
BLUE, GREY, ORANGE, GREEN, RED = "#2563eb", "#9ca3af", "#f97316", "#16a34a", "#dc2626"
MAX_HEAT_CELLS = 4_000
"""Most rectangles a heatmap draws; finer grids are merged (0.25 m cells of a 36 x 24 m floor: 0.5 m)."""


@dataclass(frozen=True)
class CarOutline:
    """A display car drawn on the floor plan: label, footprint and browse zone in floor metres."""

    car_id: str
    label: str
    interior_m: Sequence[tuple[float, float]]
    browse_m: Sequence[tuple[float, float]]


ChartSpec = alt.Chart | alt.LayerChart
"""What every function here returns: a top-level Altair chart for `st.altair_chart`."""


def _values(rows: Sequence[dict[str, Any]]) -> alt.Data:
    return alt.Data(values=list(rows))  # type: ignore[no-untyped-call]


def hourly_chart(
    hours: Sequence[int],
    this_day: Sequence[float],
    last_week: Sequence[float | None],
    *,
    this_label: str,
    last_week_label: str,
    hour_label: str,
    visitors_label: str,
) -> ChartSpec:
    """Bars for the chosen day's visitors per local hour, a line for the same weekday a week earlier."""
    this_rows = [
        {"hour": h, "series": this_label, "visitors": v} for h, v in zip(hours, this_day, strict=True)
    ]
    last_rows = [
        {"hour": h, "series": last_week_label, "visitors": v}
        for h, v in zip(hours, last_week, strict=True)
        if v is not None
    ]
    colour = alt.Color(
        "series:N", scale=alt.Scale(domain=[this_label, last_week_label], range=[BLUE, GREY]), title=None
    )
    encoding = {
        "x": alt.X("hour:O", title=hour_label, axis=alt.Axis(labelAngle=0)),
        "y": alt.Y("visitors:Q", title=visitors_label),
        "color": colour,
        "tooltip": ["series:N", "hour:O", "visitors:Q"],
    }
    bars = alt.Chart(_values(this_rows)).mark_bar().encode(**encoding)
    line = alt.Chart(_values(last_rows)).mark_line(point=True).encode(**encoding)
    return cast(ChartSpec, (bars + line).properties(height=280).configure_legend(orient="top"))


def car_ranking_chart(
    labels: Sequence[str],
    browsers: Sequence[float],
    entries: Sequence[float],
    *,
    browsers_label: str,
    entries_label: str,
) -> ChartSpec:
    """Grouped horizontal bars, most-browsed car on top."""
    rows = []
    for rank, (label, b, e) in enumerate(zip(labels, browsers, entries, strict=True)):
        rows.append({"car": label, "rank": rank, "figure": browsers_label, "value": b})
        rows.append({"car": label, "rank": rank, "figure": entries_label, "value": e})
    return cast(
        ChartSpec,
        alt.Chart(_values(rows))
        .mark_bar()
        .encode(
            y=alt.Y("car:N", sort=list(labels), title=None, axis=alt.Axis(labelLimit=160)),
            yOffset="figure:N",
            x=alt.X("value:Q", title=None),
            color=alt.Color(
                "figure:N",
                scale=alt.Scale(domain=[browsers_label, entries_label], range=[BLUE, GREEN]),
                title=None,
            ),
            tooltip=["car:N", "figure:N", "value:Q"],
        )
        .properties(height=60 * len(labels) + 40)
        .configure_legend(orient="top"),
    )


def heat_cells(
    person_seconds: npt.NDArray[np.float64], cell_m: float, max_cells: int = MAX_HEAT_CELLS
) -> tuple[list[dict[str, float]], float]:
    """Non-empty cells as rectangles in metres, merged into coarser cells when the grid is large.

    Returns (rows with x, x2, y, y2, person_s; the cell edge drawn). Merging sums person-seconds, so the
    total is unchanged; it keeps a page light on a tablet whatever the floor size.
    """
    grid = np.nan_to_num(np.asarray(person_seconds, dtype=np.float64), nan=0.0)
    ny, nx = grid.shape
    k = max(1, math.ceil(math.sqrt(nx * ny / max_cells)))
    if k > 1:
        padded = np.zeros((math.ceil(ny / k) * k, math.ceil(nx / k) * k))
        padded[:ny, :nx] = grid
        grid = padded.reshape(padded.shape[0] // k, k, padded.shape[1] // k, k).sum(axis=(1, 3))
    edge = cell_m * k
    iy, ix = np.nonzero(grid > 0)
    rows = [
        {"x": float(x * edge), "x2": float((x + 1) * edge), "y": float(y * edge), "y2": float((y + 1) * edge),
         "person_s": round(float(grid[y, x]), 1)}
        for y, x in zip(iy.tolist(), ix.tolist(), strict=True)
    ]  # fmt: skip
    return rows, edge


def _polygon_rows(points: Sequence[tuple[float, float]], group: str) -> list[dict[str, Any]]:
    closed = [*points, points[0]]
    return [{"x": float(x), "y": float(y), "order": i, "group": group} for i, (x, y) in enumerate(closed)]


def heatmap_spec(
    person_seconds: npt.NDArray[np.float64],
    cell_m: float,
    floor_size_m: tuple[float, float] | None,
    cars: Sequence[CarOutline],
    *,
    colour_title: str,
    width_px: int = 600,
) -> dict[str, Any]:
    """Floor heatmap as a Vega-Lite spec: person-seconds per cell (`person_seconds[iy, ix]`), origin at the
    plan's top-left, axes in floor metres with y growing down the plan as in the node configuration.

    Each display car's footprint is outlined (solid) with its browse zone (dotted) and labelled with its
    model name. Cells are rectangles in metres (see `heat_cells`). Written as a plain spec, not through
    Altair, because validating thousands of cells there costs seconds per page.
    """
    ny, nx = person_seconds.shape
    width_m = floor_size_m[0] if floor_size_m else nx * cell_m
    depth_m = floor_size_m[1] if floor_size_m else ny * cell_m
    height_px = max(160, round(width_px * depth_m / max(width_m, 1e-6)))
    x = {"field": "x", "type": "quantitative", "scale": {"domain": [0, width_m], "nice": False}, "title": "m"}
    y = {
        "field": "y",
        "type": "quantitative",
        "scale": {"domain": [0, depth_m], "reverse": True, "nice": False},
        "title": "m",
    }
    order = {"field": "order", "type": "quantitative"}
    cells, _ = heat_cells(person_seconds, cell_m)
    interiors: list[dict[str, Any]] = []
    browses: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    for car in cars:
        if len(car.browse_m) >= 3:
            browses += _polygon_rows(car.browse_m, car.car_id)
        outline = car.interior_m if len(car.interior_m) >= 3 else car.browse_m
        if len(outline) >= 3:
            interiors += _polygon_rows(outline, car.car_id)
            labels.append(
                {
                    "x": sum(p[0] for p in outline) / len(outline),
                    "y": sum(p[1] for p in outline) / len(outline),
                    "label": car.label,
                }
            )
    floor = _polygon_rows([(0, 0), (width_m, 0), (width_m, depth_m), (0, depth_m)], "floor")
    layers: list[dict[str, Any]] = [
        {
            "data": {"values": [{"x": 0.0, "y": 0.0}, {"x": width_m, "y": depth_m}]},
            "mark": {"type": "point", "opacity": 0},
            "encoding": {"x": x, "y": y},
        },
        {
            "data": {"values": cells},
            "mark": {"type": "rect"},
            "encoding": {
                "x": x,
                "x2": {"field": "x2"},
                "y": y,
                "y2": {"field": "y2"},
                "color": {
                    "field": "person_s",
                    "type": "quantitative",
                    "scale": {"scheme": "yelloworangered"},
                    "title": colour_title,
                    "legend": {"format": ",.0f"},
                },
                "tooltip": [
                    {"field": "x", "type": "quantitative", "title": "x (m)"},
                    {"field": "y", "type": "quantitative", "title": "y (m)"},
                    {"field": "person_s", "type": "quantitative", "title": colour_title},
                ],
            },
        },
        {
            "data": {"values": floor},
            "mark": {"type": "line", "color": "#374151", "strokeWidth": 2},
            "encoding": {"x": x, "y": y, "order": order},
        },
    ]
    detail = {"field": "group", "type": "nominal"}
    if browses:
        layers.append(
            {
                "data": {"values": browses},
                "mark": {"type": "line", "color": BLUE, "strokeDash": [3, 3], "strokeWidth": 1},
                "encoding": {"x": x, "y": y, "order": order, "detail": detail},
            }
        )
    if interiors:
        layers.append(
            {
                "data": {"values": interiors},
                "mark": {"type": "line", "color": BLUE, "strokeWidth": 2},
                "encoding": {"x": x, "y": y, "order": order, "detail": detail},
            }
        )
    if labels:
        layers.append(
            {
                "data": {"values": labels},
                "mark": {"type": "text", "fontWeight": "bold", "color": "#1e3a8a", "fontSize": 12},
                "encoding": {"x": x, "y": y, "text": {"field": "label", "type": "nominal"}},
            }
        )
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": width_px,
        "height": height_px,
        "layer": layers,
    }


def radar_chart(dimensions: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]]) -> ChartSpec:
    """Health radar on the 0-100 score scale: one closed line per (name, scores per dimension, colour)."""
    n = len(dimensions)

    def point(i: int, r: float) -> tuple[float, float]:
        angle = math.pi / 2 - 2 * math.pi * i / n  # first dimension at the top, clockwise
        return r * math.cos(angle), r * math.sin(angle)

    grid_rows: list[dict[str, Any]] = []
    for ring in (25, 50, 75, 100):
        for k in range(n + 1):
            gx, gy = point(k % n, ring)
            grid_rows.append({"x": gx, "y": gy, "order": k, "ring": ring})
    spokes = [{"x": 0.0, "y": 0.0, "x2": point(i, 100)[0], "y2": point(i, 100)[1]} for i in range(n)]
    labels = [
        {"x": point(i, 118)[0], "y": point(i, 118)[1], "label": name} for i, name in enumerate(dimensions)
    ]
    data_rows: list[dict[str, Any]] = []
    for name, scores, _ in series:
        for k in range(n + 1):
            px, py = point(k % n, float(scores[k % n]))
            data_rows.append(
                {"x": px, "y": py, "order": k, "series": name, "score": round(float(scores[k % n]), 1)}
            )
    scale = alt.Scale(domain=[-135, 135])
    x, y = alt.X("x:Q", scale=scale, axis=None), alt.Y("y:Q", scale=scale, axis=None)
    colour = alt.Color(
        "series:N", scale=alt.Scale(domain=[s[0] for s in series], range=[s[2] for s in series]), title=None
    )
    grid = (
        alt.Chart(_values(grid_rows))
        .mark_line(color="#e5e7eb")
        .encode(x=x, y=y, order="order:Q", detail="ring:N")
    )
    spoke = alt.Chart(_values(spokes)).mark_rule(color="#e5e7eb").encode(x=x, y=y, x2="x2:Q", y2="y2:Q")
    text = alt.Chart(_values(labels)).mark_text(fontSize=12, color="#374151").encode(x=x, y=y, text="label:N")
    lines = (
        alt.Chart(_values(data_rows))
        .mark_line(point=True, strokeWidth=2)
        .encode(x=x, y=y, order="order:Q", color=colour, tooltip=["series:N", "score:Q"])
    )
    return cast(
        ChartSpec,
        alt.layer(grid, spoke, text, lines)
        .properties(width=380, height=380)
        .configure_view(strokeWidth=0)
        .configure_legend(orient="top"),
    )


def trend_chart(
    dates: Sequence[date], series: Sequence[tuple[str, Sequence[float | None]]], *, value_label: str
) -> ChartSpec:
    """Daily lines, one per store; missing days leave gaps."""
    rows = [
        {"day": d.isoformat(), "store": name, "value": v}
        for name, values in series
        for d, v in zip(dates, values, strict=True)
        if v is not None
    ]
    return cast(
        ChartSpec,
        alt.Chart(_values(rows))
        .mark_line(point=len(dates) <= 31)
        .encode(
            x=alt.X("day:T", title=None),
            y=alt.Y("value:Q", title=value_label),
            color=alt.Color("store:N", title=None),
            tooltip=["store:N", "day:T", "value:Q"],
        )
        .properties(height=280)
        .configure_legend(orient="top"),
    )
