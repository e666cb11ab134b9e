"""The store page as one printable report: its headline figures as lines of text, then the same charts the
page drew, stacked, rendered on the server to PDF or PNG (vl-convert: no browser, no extra dependency)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import vl_convert

from dashboard.charts import SCHEMA, ChartSpec

REPORT_WIDTH_PX = 700
LINE_PX = 20


def _embedded(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A chart as a part of the report: top-level-only keys ($schema, config) dropped."""
    return {k: v for k, v in spec.items() if k not in ("$schema", "config")}


def report_spec(title: str, lines: Sequence[str], charts: Sequence[Mapping[str, Any]]) -> ChartSpec:
    """One Vega-Lite spec: the title, the figures (one line each), then each chart below the other."""
    text = {
        "data": {"values": [{"i": i, "line": line} for i, line in enumerate(lines)]},
        "mark": {"type": "text", "align": "left", "baseline": "middle", "fontSize": 13, "x": 0},
        "encoding": {
            "y": {"field": "i", "type": "ordinal", "axis": None},
            "text": {"field": "line", "type": "nominal"},
        },
        "width": REPORT_WIDTH_PX,
        "height": max(LINE_PX, LINE_PX * len(lines)),
    }
    return {
        "$schema": SCHEMA,
        "title": {"text": title, "anchor": "start", "fontSize": 20},
        "vconcat": [text, *[_embedded(c) for c in charts]],
        "spacing": 28,
        "config": {"view": {"strokeWidth": 0}, "legend": {"orient": "top"}},
    }


def report_pdf(title: str, lines: Sequence[str], charts: Sequence[Mapping[str, Any]]) -> bytes:
    """The report as a PDF document."""
    return bytes(vl_convert.vegalite_to_pdf(report_spec(title, lines, charts)))


def report_png(title: str, lines: Sequence[str], charts: Sequence[Mapping[str, Any]]) -> bytes:
    """The report as a PNG picture (twice the screen's pixels, for print)."""
    return bytes(vl_convert.vegalite_to_png(report_spec(title, lines, charts), scale=2))
