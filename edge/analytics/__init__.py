"""Showroom analytics: pure functions of floor tracks and time that emit contract events."""

from __future__ import annotations

from edge.analytics.door import DoorCounter
from edge.analytics.heat import HeatGrid
from edge.analytics.showroom import ShowroomAnalytics
from edge.analytics.visits import Visit

__all__ = ["DoorCounter", "HeatGrid", "ShowroomAnalytics", "Visit"]
