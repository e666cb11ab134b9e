"""Per-minute floor heat: person-seconds per floor cell, staff excluded, sent once per minute.

Heat counts every track on the floor that does not count as staff (flagged and on no visit), whether or
not it is on a visit; a briefly lost track (hidden behind a car or someone else) still stands for a person
there, at its last position. Occupancy only: no identity goes into a cell.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from edge.events import EventStamper, Heat, floor_minute

MAX_STEP_S = 1.0
"""A gap between frames longer than this adds only this much time (a stalled camera adds no fake heat)."""


MinuteHeat = tuple[datetime, list[tuple[int, int, float]], int]
"""A finished minute: its start, its cells `(ix, iy, person_seconds)` and the most visitors on the floor."""


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

    def roll(self, ts_utc: datetime) -> MinuteHeat | None:
        """Start the minute of `ts_utc`; returns the finished minute (start, cells, occupancy max), if any."""
        minute = floor_minute(ts_utc)
        if self.minute == minute:
            return None
        done = self.take()
        self.minute = minute
        return done

    def take(self) -> MinuteHeat | None:
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


def heat_event(stamper: EventStamper, cell_m: float, done: MinuteHeat, ts_utc: datetime) -> Heat:
    """The `heat` event of a finished minute, stamped at `ts_utc`."""
    minute, cells, occupancy_max = done
    return stamper.stamp(Heat, ts_utc, minute=minute, cell_m=cell_m, cells=cells, occupancy_max=occupancy_max)
