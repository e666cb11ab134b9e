"""Reception: time a visitor spends near a staff member, one streak per conversation.

A visitor is received when they spend at least `reception_min_s` within `reception_radius_m` of a staff
member (DOMAIN.md). Staff here are tracks flagged staff and on no visit (a wrong flag changes no visit).
Only observed steps count: a visitor briefly lost is neither near nor away.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from vision_models.arrays import XY

RECEPTION_GAP_S = 3.0
"""A visitor and a staff member apart for less than this are still in one conversation."""


@dataclass
class ReceptionStreak:
    started_at: datetime
    last_near: datetime


def near_staff(xy: XY, staff_xy: Sequence[XY], radius_m: float) -> bool:
    """True when a staff member stands within `radius_m` of `xy` (floor metres)."""
    return any(math.dist(xy, s) <= radius_m for s in staff_xy)


def step_reception(
    streak: ReceptionStreak | None, near: bool, ts_utc: datetime
) -> tuple[ReceptionStreak | None, ReceptionStreak | None]:
    """Advance time spent near a staff member; returns (open streak, streak that just ended)."""
    if near:
        if streak is None:
            return ReceptionStreak(ts_utc, ts_utc), None
        streak.last_near = ts_utc
        return streak, None
    if streak is not None and (ts_utc - streak.last_near).total_seconds() > RECEPTION_GAP_S:
        return None, streak
    return streak, None
