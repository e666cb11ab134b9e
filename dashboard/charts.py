"""Plotly figures for the views. Pure functions: figures in, no Streamlit, no data access.

Inputs are plain sequences already scoped and fetched by the view; every label arrives translated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go

# One palette for every chart so "this store" and "last week" look the same everywhere.
BLUE, GREY, ORANGE, GREEN, RED = "#2563eb", "#9ca3af", "#f97316", "#16a34a", "#dc2626"
_LAYOUT = {
    "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
    "font": {"family": "system-ui, -apple-system, 'PingFang SC', 'Microsoft YaHei', sans-serif"},
    "plot_bgcolor": "white",
}


@dataclass(frozen=True)
class CarOutline:
    """A display car drawn on the floor plan: label, footprint and browse zone in floor metres."""

    car_id: str
    label: str
    interior_m: Sequence[tuple[float, float]]
    browse_m: Sequence[tuple[float, float]]


def _polygon_path(points: Sequence[tuple[float, float]]) -> str:
    head, *rest = points
    return f"M {head[0]},{head[1]} " + " ".join(f"L {x},{y}" for x, y in rest) + " Z"


def hourly_figure(
    hours: Sequence[int],
    this_day: Sequence[float],
    last_week: Sequence[float],
    *,
    this_label: str,
    last_week_label: str,
    hour_label: str,
) -> go.Figure:
    """Bars for the chosen day's visitors per local hour, a line for the same weekday a week earlier."""
    fig = go.Figure()
    fig.add_bar(x=list(hours), y=list(this_day), name=this_label, marker_color=BLUE)
    fig.add_scatter(
        x=list(hours), y=list(last_week), name=last_week_label, mode="lines+markers", line={"color": GREY}
    )
    fig.update_layout(**_LAYOUT, height=300, bargap=0.15)
    fig.update_xaxes(
        title=hour_label, dtick=1, range=[min(hours, default=0) - 0.5, max(hours, default=23) + 0.5]
    )
    fig.update_yaxes(rangemode="tozero", gridcolor="#eee")
    return fig


def funnel_figure(labels: Sequence[str], values: Sequence[float]) -> go.Figure:
    """Visitors -> car browsers -> car entrants, with the share of the first stage."""
    fig = go.Figure(
        go.Funnel(
            y=list(labels),
            x=list(values),
            textinfo="value+percent initial",
            marker={"color": [BLUE, ORANGE, GREEN][: len(values)]},
        )
    )
    fig.update_layout(**_LAYOUT, height=220)
    return fig


def heatmap_figure(
    person_seconds: npt.NDArray[np.float64],
    cell_m: float,
    floor_size_m: tuple[float, float] | None,
    cars: Sequence[CarOutline],
    *,
    colorbar_title: str,
) -> go.Figure:
    """Floor heatmap: person-seconds per cell (`person_seconds[iy, ix]`), origin at the plan's top-left.

    Empty cells stay transparent; each display car's footprint is outlined (solid) with its browse zone
    (dashed) and labelled with its model name.
    """
    ny, nx = person_seconds.shape
    width_m = floor_size_m[0] if floor_size_m else nx * cell_m
    depth_m = floor_size_m[1] if floor_size_m else ny * cell_m
    z = np.where(person_seconds > 0, person_seconds, np.nan)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=(np.arange(nx) + 0.5) * cell_m,
            y=(np.arange(ny) + 0.5) * cell_m,
            colorscale="YlOrRd",
            colorbar={"title": {"text": colorbar_title}, "thickness": 12},
            hovertemplate="x %{x:.2f} m, y %{y:.2f} m<br>%{z:.0f}<extra></extra>",
            zmin=0,
        )
    )
    shapes: list[dict[str, object]] = [
        {
            "type": "rect",
            "x0": 0,
            "y0": 0,
            "x1": width_m,
            "y1": depth_m,
            "line": {"color": "#374151", "width": 2},
        }
    ]
    for car in cars:
        if len(car.browse_m) >= 3:
            shapes.append(
                {
                    "type": "path",
                    "path": _polygon_path(car.browse_m),
                    "line": {"color": BLUE, "dash": "dot", "width": 1},
                }
            )
        outline = car.interior_m if len(car.interior_m) >= 3 else car.browse_m
        if len(outline) >= 3:
            shapes.append(
                {"type": "path", "path": _polygon_path(outline), "line": {"color": BLUE, "width": 2}}
            )
            xs = [p[0] for p in outline]
            ys = [p[1] for p in outline]
            fig.add_annotation(
                x=sum(xs) / len(xs),
                y=sum(ys) / len(ys),
                text=f"<b>{car.label}</b>",
                showarrow=False,
                font={"color": "#1e3a8a", "size": 12},
                bgcolor="rgba(255,255,255,0.75)",
            )
    fig.update_layout(
        **_LAYOUT, shapes=shapes, height=max(320, min(640, int(520 * depth_m / max(width_m, 1))))
    )
    fig.update_xaxes(range=[0, width_m], title="m", showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(
        range=[depth_m, 0], title="m", showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1
    )
    return fig


def car_ranking_figure(
    labels: Sequence[str],
    browsers: Sequence[float],
    entries: Sequence[float],
    *,
    browsers_label: str,
    entries_label: str,
) -> go.Figure:
    """Horizontal bars, most-browsed car on top."""
    fig = go.Figure()
    fig.add_bar(y=list(labels), x=list(browsers), name=browsers_label, orientation="h", marker_color=BLUE)
    fig.add_bar(y=list(labels), x=list(entries), name=entries_label, orientation="h", marker_color=GREEN)
    fig.update_layout(**_LAYOUT, barmode="group", height=max(220, 48 * len(labels) + 60))
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(rangemode="tozero", gridcolor="#eee")
    return fig


def radar_figure(
    dimensions: Sequence[str],
    series: Sequence[tuple[str, Sequence[float], str]],
) -> go.Figure:
    """Health radar: one closed trace per (name, 0-100 scores per dimension, colour)."""
    fig = go.Figure()
    theta = [*dimensions, dimensions[0]] if dimensions else []
    for name, scores, colour in series:
        r = [*scores, scores[0]] if scores else []
        fig.add_scatterpolar(r=r, theta=theta, name=name, line={"color": colour}, fill="toself", opacity=0.55)
    fig.update_layout(
        **_LAYOUT, height=380, polar={"radialaxis": {"range": [0, 100], "tickvals": [25, 50, 75, 100]}}
    )
    return fig


def trend_figure(dates: Sequence[object], series: Sequence[tuple[str, Sequence[float | None]]]) -> go.Figure:
    """Daily lines, one per store or figure."""
    fig = go.Figure()
    for name, values in series:
        fig.add_scatter(x=list(dates), y=list(values), name=name, mode="lines")
    fig.update_layout(**_LAYOUT, height=300)
    fig.update_yaxes(rangemode="tozero", gridcolor="#eee")
    return fig
