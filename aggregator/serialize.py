"""Query results as JSON-ready values (dates ISO 8601, instants RFC 3339 UTC, arrays as nested lists)."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel

from edge.events import format_ts


def jsonable(value: Any) -> Any:
    """A structure of dicts, lists, str, int, float, bool and None; NaN and infinities become None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if hasattr(value, "total_person_s"):
            out["total_person_s"] = jsonable(value.total_person_s)
        for name in getattr(value, "json_properties", ()):
            out[name] = jsonable(getattr(value, name))
        return out
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="json"))
    if isinstance(value, datetime):
        return format_ts(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else round(value, 6)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
