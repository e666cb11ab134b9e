"""Charts for the views, as Vega-Lite specs written as plain data. Pure functions, no data access.

Charts are drawn on the server into SVG by the Vega project's own renderer (`to_svg`, vl-convert) and the
browser shows a picture: starting Vega in the browser cost about 0.6 s for a page's first chart and 0.3 s
for each further one on a 2-core box, which put a page of four charts past its 2 s budget. Text stays SVG
text, so the browser's fonts draw Chinese labels. Inputs are plain sequences already scoped and fetched by
the view; labels arrive translated. The floor heatmap is one PNG layer (coloured on the server) under
vector car outlines, so its cost does not grow with the number of floor cells.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import vl_convert

# One palette for every chart so "this store" and "last week" look the same everywhere.
BLUE, GREY, ORANGE, GREEN, RED = "#2563eb", "#9ca3af", "#f97316", "#16a34a", "#dc2626"


@dataclass(frozen=True)
class CarOutline:
    """A display car drawn on the floor plan: label, footprint and browse zone in floor metres."""

    car_id: str
    label: str
    interior_m: Sequence[tuple[float, float]]
    browse_m: Sequence[tuple[float, float]]


@dataclass(frozen=True)
class PlanDrawing:
    """The floor plan under the heat: the store's drawing (PNG) where it has one, its doors and its named
    areas (staff areas, reception, negotiation, entrance...), in floor metres. Labels arrive translated."""

    image_png: bytes | None = None
    image_extent_m: tuple[float, float] | None = None
    """The drawing's width and depth on the floor, from the plan's top-left corner."""
    doors: Sequence[tuple[str, tuple[tuple[float, float], tuple[float, float]]]] = ()
    """(name, door line)."""
    areas: Sequence[tuple[str, str, Sequence[tuple[float, float]]]] = ()
    """(kind, name, polygon); kind is one of `PLAN_COLOURS`."""
    kind_labels: Mapping[str, str] | None = None
    """The legend's words for each kind (and 'door'); the kind itself where absent."""


PLAN_COLOURS: dict[str, str] = {
    "door": "#dc2626",
    "staff": "#4b5563",
    "reception": "#16a34a",
    "negotiation": "#f97316",
    "entrance": "#7c3aed",
    "other": "#0891b2",
}
"""Line colour of each kind of floor plan element (the legend lists those drawn)."""


ChartSpec = dict[str, Any]
"""What every function here returns: a top-level Vega-Lite spec (plain data, so building one costs
nothing: Altair took 70-130 ms to build a small chart)."""
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
LEGEND_ON_TOP = {"legend": {"orient": "top"}}


def _field(name: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"field": name, "type": kind, **extra}


WIDE_PX, NARROW_PX = 720, 420
"""Widths of charts drawn on the server: a full-width chart and one beside a table."""


def to_svg(spec: Mapping[str, Any]) -> str:
    """The Vega-Lite `spec` drawn as an SVG document (text kept as text)."""
    return str(vl_convert.vegalite_to_svg(dict(spec)))


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
    colour = _field(
        "series",
        "nominal",
        scale={"domain": [this_label, last_week_label], "range": [BLUE, GREY]},
        title=None,
    )
    encoding = {
        "x": _field("hour", "ordinal", title=hour_label, axis={"labelAngle": 0}),
        "y": _field("visitors", "quantitative", title=visitors_label),
        "color": colour,
        "tooltip": [
            _field("series", "nominal"),
            _field("hour", "ordinal"),
            _field("visitors", "quantitative"),
        ],
    }
    return {
        "$schema": SCHEMA,
        "width": WIDE_PX,
        "height": 280,
        "config": LEGEND_ON_TOP,
        "layer": [
            {"data": {"values": this_rows}, "mark": {"type": "bar"}, "encoding": encoding},
            {"data": {"values": last_rows}, "mark": {"type": "line", "point": True}, "encoding": encoding},
        ],
    }


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
    return {
        "$schema": SCHEMA,
        "width": NARROW_PX,
        "height": 60 * len(labels) + 40,
        "config": LEGEND_ON_TOP,
        "data": {"values": rows},
        "mark": {"type": "bar"},
        "encoding": {
            "y": _field("car", "nominal", sort=list(labels), title=None, axis={"labelLimit": 160}),
            "yOffset": _field("figure", "nominal"),
            "x": _field("value", "quantitative", title=None),
            "color": _field(
                "figure",
                "nominal",
                scale={"domain": [browsers_label, entries_label], "range": [BLUE, GREEN]},
                title=None,
            ),
            "tooltip": [
                _field("car", "nominal"),
                _field("figure", "nominal"),
                _field("value", "quantitative"),
            ],
        },
    }


HEAT_COLOURS = (
    *("#fcfdbf", "#feca8d", "#fd9668", "#f1605d", "#cd4071"),
    *("#9e2f7f", "#721f81", "#440f76", "#180f3d"),
)
"""Magma, reversed (light = little, dark = much): a perceptually uniform scale, so equal steps of
person-seconds look like equal steps of colour, from an occupied cell's first person-second to the top."""
HEAT_PX_PER_CELL_MAX = 8
"""Cells are drawn as blocks of at most this many pixels a side (nearest-neighbour: no blurred edges)."""


def heat_raster(
    person_seconds: npt.NDArray[np.float64], target_px: int = 900, top: float | None = None
) -> tuple[bytes, float]:
    """The grid coloured on the server as a PNG (RGBA, empty cells transparent) and the top of the colour
    scale: `top` when given (busier cells take the last colour), else the busiest cell.

    Pixel row 0 is grid row 0 (the plan's top edge). Colours run linearly in RGB through `HEAT_COLOURS`,
    as the chart's legend does (`interpolate: rgb`), so the legend reads the cells exactly.
    """
    grid = np.nan_to_num(np.asarray(person_seconds, dtype=np.float64), nan=0.0)
    grid = np.where(grid > 0, grid, 0.0)
    ny, nx = grid.shape
    vmax = top if top is not None and top > 0 else (float(grid.max()) if grid.size else 0.0)
    stops = np.array([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in HEAT_COLOURS], dtype=np.float64)
    pos = np.minimum(grid, vmax) / vmax * (len(stops) - 1) if vmax > 0 else np.zeros_like(grid)
    i = np.clip(np.floor(pos).astype(int), 0, len(stops) - 2)
    f = (pos - i)[..., None]
    rgb = stops[i] * (1.0 - f) + stops[i + 1] * f
    bgra = np.zeros((ny, nx, 4), dtype=np.uint8)
    bgra[..., :3] = np.rint(rgb[..., ::-1]).astype(np.uint8)
    bgra[..., 3] = np.where(grid > 0, 255, 0).astype(np.uint8)
    k = max(1, min(HEAT_PX_PER_CELL_MAX, target_px // max(nx, 1)))
    bgra = np.repeat(np.repeat(bgra, k, axis=0), k, axis=1)
    ok, png = cv2.imencode(".png", bgra)
    if not ok:  # pragma: no cover - encoding a uint8 BGRA array does not fail
        raise ValueError("could not encode the heat raster as PNG")
    return png.tobytes(), vmax


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
    colour_top: float | None = None,
    inside_labels: Mapping[str, str] | None = None,
    plan: PlanDrawing | None = None,
    plan_title: str = "",
    width_px: int = 600,
) -> dict[str, Any]:
    """Floor heatmap as a Vega-Lite spec: person-seconds per cell (`person_seconds[iy, ix]`), origin at the
    plan's top-left, axes in floor metres with y growing down the plan as in the node configuration.

    Each display car's footprint is outlined (solid) with its browse zone (dotted) and labelled with its
    model name. The cells are one image coloured on the server (`heat_raster`), with a legend of the same
    colours: the chart costs the same whatever the floor's size or cell edge. The colour scale ends at
    `colour_top` (default: the busiest cell); the legend's title should say how it was chosen.
    `inside_labels` (by car id) is written under each car's name: the time spent inside it, kept off the
    floor's colours. `plan`: the store's drawing underneath (the heat then lets it show through), its doors
    and named areas outlined and labelled, with a legend titled `plan_title`. Layers are named (`name`).
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
    png, vmax = heat_raster(person_seconds, top=colour_top)
    image_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    interiors: list[dict[str, Any]] = []
    browses: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    inside_rows: list[dict[str, Any]] = []
    for car in cars:
        if len(car.browse_m) >= 3:
            browses += _polygon_rows(car.browse_m, car.car_id)
        outline = car.interior_m if len(car.interior_m) >= 3 else car.browse_m
        if len(outline) >= 3:
            interiors += _polygon_rows(outline, car.car_id)
            cx, cy = sum(p[0] for p in outline) / len(outline), sum(p[1] for p in outline) / len(outline)
            labels.append({"x": cx, "y": cy, "label": car.label})
            if inside_labels and car.car_id in inside_labels:
                inside_rows.append({"x": cx, "y": cy, "label": inside_labels[car.car_id]})
    floor = _polygon_rows([(0, 0), (width_m, 0), (width_m, depth_m), (0, depth_m)], "floor")
    drawn_under = plan is not None and plan.image_png is not None and plan.image_extent_m is not None
    layers: list[dict[str, Any]] = [
        {
            "name": "extent",
            "data": {"values": [{"x": 0.0, "y": 0.0}, {"x": width_m, "y": depth_m}]},
            "mark": {"type": "point", "opacity": 0},
            "encoding": {"x": x, "y": y},
        },
        {
            # The cells: one image spanning the grid (which may run past the floor's far edges).
            "name": "heat",
            "data": {"values": [{"x": 0.0, "y": 0.0, "url": image_url}]},
            "mark": {
                "opacity": 0.8 if drawn_under else 1.0,
                "type": "image",
                "width": width_px * nx * cell_m / width_m,
                "height": height_px * ny * cell_m / depth_m,
                "align": "left",
                "baseline": "top",
                "aspect": False,
                "clip": True,
            },
            "encoding": {"x": x, "y": y, "url": {"field": "url", "type": "nominal"}},
        },
        {
            # The colour legend, read off the same colours as the image.
            "name": "heat_legend",
            "data": {"values": [{"x": 0.0, "y": 0.0, "person_s": v} for v in (0.0, vmax)]},
            "mark": {"type": "point", "opacity": 0},
            "encoding": {
                "x": x,
                "y": y,
                "color": {
                    "field": "person_s",
                    "type": "quantitative",
                    "scale": {
                        "domain": [vmax * k / (len(HEAT_COLOURS) - 1) for k in range(len(HEAT_COLOURS))],
                        "range": list(HEAT_COLOURS),
                        "interpolate": "rgb",
                    },
                    "title": colour_title,
                    "legend": {"format": ",.0f", "titleLimit": 600},
                },
            },
        },
        {
            # The floor's outline (node configs hold no walls: those show on the drawing, if any).
            "name": "outline",
            "data": {"values": floor},
            "mark": {"type": "line", "color": "#374151", "strokeWidth": 2},
            "encoding": {"x": x, "y": y, "order": order},
        },
    ]
    detail = {"field": "group", "type": "nominal"}
    if plan is not None:
        layers[1:1] = _drawing_layer(plan, x, y, width_px, height_px, width_m, depth_m)
        layers += _plan_layers(plan, x, y, order, detail, plan_title)
    if browses:
        layers.append(
            {
                "name": "car_browse",
                "data": {"values": browses},
                "mark": {"type": "line", "color": BLUE, "strokeDash": [3, 3], "strokeWidth": 1},
                "encoding": {"x": x, "y": y, "order": order, "detail": detail},
            }
        )
    if interiors:
        layers.append(
            {
                "name": "car_outline",
                "data": {"values": interiors},
                "mark": {"type": "line", "color": BLUE, "strokeWidth": 2},
                "encoding": {"x": x, "y": y, "order": order, "detail": detail},
            }
        )
    if interiors:
        # Car interiors are not floor: their time is written on them, not coloured.
        layers.insert(
            layers.index(next(la for la in layers if la["name"] == "outline")),
            {
                "name": "car_fill",
                "data": {"values": interiors},
                "mark": {"type": "line", "fill": "#e5e7eb", "fillOpacity": 0.9, "strokeOpacity": 0},
                "encoding": {"x": x, "y": y, "order": order, "detail": detail},
            },
        )
    if inside_rows:
        layers.insert(
            layers.index(next(la for la in layers if la["name"] == "outline")),
            {
                "name": "car_inside",
                "data": {"values": inside_rows},
                "mark": {"type": "text", "color": "#374151", "fontSize": 10, "dy": 10},
                "encoding": {"x": x, "y": y, "text": {"field": "label", "type": "nominal"}},
            },
        )
    if labels:
        layers.append(
            {
                "name": "car_labels",
                "data": {"values": labels},
                "mark": {"type": "text", "fontWeight": "bold", "color": "#1e3a8a", "fontSize": 12, "dy": -4},
                "encoding": {"x": x, "y": y, "text": {"field": "label", "type": "nominal"}},
            }
        )
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": width_px,
        "height": height_px,
        "layer": layers,
    }


def _drawing_layer(
    plan: PlanDrawing,
    x: dict[str, Any],
    y: dict[str, Any],
    width_px: int,
    height_px: int,
    width_m: float,
    depth_m: float,
) -> list[dict[str, Any]]:
    """The store's drawing, under the heat, placed from the plan's top-left corner at its extent."""
    if plan.image_png is None or plan.image_extent_m is None:
        return []
    url = "data:image/png;base64," + base64.b64encode(plan.image_png).decode("ascii")
    w_m, d_m = plan.image_extent_m
    return [
        {
            "name": "floor_image",
            "data": {"values": [{"x": 0.0, "y": 0.0, "url": url}]},
            "mark": {
                "type": "image",
                "width": width_px * w_m / width_m,
                "height": height_px * d_m / depth_m,
                "align": "left",
                "baseline": "top",
                "aspect": False,
                "clip": True,
            },
            "encoding": {"x": x, "y": y, "url": {"field": "url", "type": "nominal"}},
        }
    ]


def _plan_layers(
    plan: PlanDrawing,
    x: dict[str, Any],
    y: dict[str, Any],
    order: dict[str, Any],
    detail: dict[str, Any],
    title: str,
) -> list[dict[str, Any]]:
    """Doors (thick lines) and named areas (outlines), coloured by kind with one legend, and their names."""
    words = plan.kind_labels or {}
    kinds = ["door"] if plan.doors else []
    kinds += [k for k in PLAN_COLOURS if k != "door" and any(a[0] == k for a in plan.areas)]
    if not kinds:
        return []
    stroke = {
        "field": "kind",
        "type": "nominal",
        "scale": {"domain": [words.get(k, k) for k in kinds], "range": [PLAN_COLOURS[k] for k in kinds]},
        "title": title,
        "legend": {"orient": "bottom", "titleLimit": 600},
    }
    area_rows: list[dict[str, Any]] = []
    names: list[dict[str, Any]] = []
    for i, (kind, name, polygon) in enumerate(plan.areas):
        if len(polygon) < 3:
            continue
        area_rows += [{**r, "kind": words.get(kind, kind)} for r in _polygon_rows(polygon, f"area-{i}")]
        cx, cy = sum(p[0] for p in polygon) / len(polygon), sum(p[1] for p in polygon) / len(polygon)
        names.append({"x": cx, "y": cy, "label": name})
    door_rows: list[dict[str, Any]] = []
    for i, (name, ((x1, y1), (x2, y2))) in enumerate(plan.doors):
        door_rows += [
            {"x": x1, "y": y1, "order": 0, "group": f"door-{i}", "kind": words.get("door", "door")},
            {"x": x2, "y": y2, "order": 1, "group": f"door-{i}", "kind": words.get("door", "door")},
        ]
        names.append({"x": (x1 + x2) / 2, "y": (y1 + y2) / 2, "label": name})
    encoding = {"x": x, "y": y, "order": order, "detail": detail, "stroke": stroke}
    layers: list[dict[str, Any]] = []
    if area_rows:
        layers.append(
            {
                "name": "plan_areas",
                "data": {"values": area_rows},
                "mark": {"type": "line", "strokeWidth": 2, "strokeDash": [6, 3]},
                "encoding": encoding,
            }
        )
    if door_rows:
        layers.append(
            {
                "name": "plan_doors",
                "data": {"values": door_rows},
                "mark": {"type": "line", "strokeWidth": 6, "strokeCap": "round"},
                "encoding": encoding,
            }
        )
    layers.append(
        {
            "name": "plan_labels",
            "data": {"values": names},
            "mark": {"type": "text", "color": "#111827", "fontSize": 11, "dy": -8},
            "encoding": {"x": x, "y": y, "text": {"field": "label", "type": "nominal"}},
        }
    )
    return layers


RADAR_RING_STEP = 25
RADAR_MAX = 200.0
"""The radar's outermost ring (% of brand TOP); a value beyond it is drawn on it (the table has it)."""


def radar_rings(values: Sequence[float]) -> list[int]:
    """The rings drawn: every 25 up to 100, further when a value goes beyond TOP (up to `RADAR_MAX`)."""
    top = max([100.0, *[min(v, RADAR_MAX) for v in values]])
    last = int(math.ceil(top / RADAR_RING_STEP) * RADAR_RING_STEP)
    return list(range(RADAR_RING_STEP, last + 1, RADAR_RING_STEP))


def radar_chart(
    dimensions: Sequence[str], series: Sequence[tuple[str, Sequence[float], str]], *, scale_title: str
) -> ChartSpec:
    """Health radar in % of the brand's TOP (100 = TOP), with its scale: one closed line per (name, values
    per dimension, colour). Values are not capped at 100, so a store above TOP shows outside TOP's ring."""
    n = len(dimensions)
    rings = radar_rings([float(v) for _, values, _ in series for v in values])
    outer = float(rings[-1])

    def point(i: int, r: float) -> tuple[float, float]:
        angle = math.pi / 2 - 2 * math.pi * i / n  # first dimension at the top, clockwise
        return r * math.cos(angle), r * math.sin(angle)

    grid_rows: list[dict[str, Any]] = []
    for ring in rings:
        for k in range(n + 1):
            gx, gy = point(k % n, ring)
            grid_rows.append({"x": gx, "y": gy, "order": k, "ring": ring})
    spokes = [{"x": 0.0, "y": 0.0, "x2": point(i, outer)[0], "y2": point(i, outer)[1]} for i in range(n)]
    labels = [
        {"x": point(i, outer * 1.2)[0], "y": point(i, outer * 1.2)[1], "label": name}
        for i, name in enumerate(dimensions)
    ]
    # The scale: each ring's value beside the first spoke.
    ring_labels = [{"x": outer * 0.04, "y": float(ring), "label": str(ring)} for ring in rings]
    data_rows: list[dict[str, Any]] = []
    for name, values, _ in series:
        for k in range(n + 1):
            value = float(values[k % n])
            px, py = point(k % n, min(value, outer))
            data_rows.append({"x": px, "y": py, "order": k, "series": name, "score": round(value, 1)})
    scale = {"domain": [-outer * 1.38, outer * 1.38]}
    x, y = (
        _field("x", "quantitative", scale=scale, axis=None),
        _field("y", "quantitative", scale=scale, axis=None),
    )
    colour = _field(
        "series",
        "nominal",
        scale={"domain": [s[0] for s in series], "range": [s[2] for s in series]},
        title=None,
    )
    order = _field("order", "quantitative")
    return {
        "$schema": SCHEMA,
        "width": 380,
        "height": 380,
        "title": {"text": scale_title, "orient": "bottom", "fontSize": 11, "fontWeight": "normal"},
        "config": {"view": {"strokeWidth": 0}, "legend": {"orient": "top", "columns": 1, "labelLimit": 400}},
        "layer": [
            {
                "data": {"values": grid_rows},
                "mark": {"type": "line", "color": "#e5e7eb"},
                "encoding": {"x": x, "y": y, "order": order, "detail": _field("ring", "nominal")},
            },
            {
                "data": {"values": spokes},
                "mark": {"type": "rule", "color": "#e5e7eb"},
                "encoding": {"x": x, "y": y, "x2": {"field": "x2"}, "y2": {"field": "y2"}},
            },
            {
                "data": {"values": ring_labels},
                "mark": {"type": "text", "fontSize": 10, "color": "#6b7280", "align": "left", "dy": -5},
                "encoding": {"x": x, "y": y, "text": _field("label", "nominal")},
            },
            {
                "data": {"values": labels},
                "mark": {"type": "text", "fontSize": 12, "color": "#374151"},
                "encoding": {"x": x, "y": y, "text": _field("label", "nominal")},
            },
            {
                "data": {"values": data_rows},
                "mark": {"type": "line", "point": True, "strokeWidth": 2},
                "encoding": {
                    "x": x,
                    "y": y,
                    "order": order,
                    "color": colour,
                    "tooltip": [_field("series", "nominal"), _field("score", "quantitative")],
                },
            },
        ],
    }


def trend_chart(
    dates: Sequence[date],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    value_label: str,
    day_format: str = "%b %d",
) -> ChartSpec:
    """Daily lines, one per store; missing days leave gaps. The axis marks whole days only, written with
    `day_format` (d3 time format: '%-m月%-d日' in Chinese; Vega's own labels would be English)."""
    rows = [
        {"day": d.isoformat(), "store": name, "value": v}
        for name, values in series
        for d, v in zip(dates, values, strict=True)
        if v is not None
    ]
    return {
        "$schema": SCHEMA,
        "width": WIDE_PX,
        "height": 280,
        "config": LEGEND_ON_TOP,
        "data": {"values": rows},
        "mark": {"type": "line", "point": len(dates) <= 31},
        "encoding": {
            "x": _field(
                "day",
                "temporal",
                title=None,
                timeUnit="yearmonthdate",
                axis={
                    "format": day_format,
                    "tickCount": {"interval": "day", "step": 1},
                    "labelAngle": 0,
                    "labelOverlap": "greedy",  # a month of days: labels thinned, never on top of each other
                },
            ),
            "y": _field("value", "quantitative", title=value_label),
            "color": _field("store", "nominal", title=None),
            "tooltip": [
                _field("store", "nominal"),
                _field("day", "temporal", timeUnit="yearmonthdate", format=day_format),
                _field("value", "quantitative"),
            ],
        },
    }
