"""Per-minute floor heat: person-seconds per floor cell, staff excluded, sent once per minute."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from edge.events import floor_minute

MAX_STEP_S = 1.0
"""A gap between frames longer than this adds only this much time (a stalled camera adds no fake heat)."""


class HeatGrid:
    """Accumulates one minute of heat at a time."""

    def __init__(self, floor_size_m: tuple[float, float], cell_m: float) -> None:
        self.cell_m = cell_m
        self.nx = max(1, math.ceil(floor_size_m[0] / cell_m))
        self.ny = max(1, math.ceil(floor_size_m[1] / cell_m))
        self.minute: datetime | None = None
        self.cells: dict[tuple[int, int], float] = defaultdict(float)
        self.occupancy_max = 0

    def cell_of(self, xy_m: tuple[float, float]) -> tuple[int, int] | None:
        ix, iy = math.floor(xy_m[0] / self.cell_m), math.floor(xy_m[1] / self.cell_m)
        if 0 <= ix < self.nx and 0 <= iy < self.ny:
            return ix, iy
        return None

    def roll(self, ts_utc: datetime) -> tuple[datetime, list[tuple[int, int, float]], int] | None:
        """Start the minute of `ts_utc`; returns the finished minute (start, cells, occupancy max), if any."""
        minute = floor_minute(ts_utc)
        if self.minute == minute:
            return None
        done = self.take()
        self.minute = minute
        return done

    def take(self) -> tuple[datetime, list[tuple[int, int, float]], int] | None:
        """The current minute's heat, then start empty."""
        if self.minute is None:
            return None
        cells = [(ix, iy, round(s, 3)) for (ix, iy), s in sorted(self.cells.items()) if round(s, 3) > 0]
        done = (self.minute, cells, self.occupancy_max)
        self.minute, self.cells, self.occupancy_max = None, defaultdict(float), 0
        return done

    def add(self, xy_m: tuple[float, float], seconds: float) -> None:
        cell = self.cell_of(xy_m)
        if cell is not None and seconds > 0:
            self.cells[cell] += min(seconds, MAX_STEP_S)

    def note_occupancy(self, occupancy: int) -> None:
        self.occupancy_max = max(self.occupancy_max, occupancy)

    @staticmethod
    def minute_end(minute: datetime) -> datetime:
        return minute + timedelta(minutes=1)
