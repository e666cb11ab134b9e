"""The scenario library: named, seeded situations the product must measure correctly.

A scenario fixes when the simulated day starts (store local time), how long visitors keep arriving, how
they behave, how many staff are on the floor, the camera noise model and any outages. Together with a
seed and a node configuration it determines every trajectory and every detection.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from edge.sim.behaviour import BehaviourParams


@dataclass(frozen=True)
class NoiseModel:
    """Faults of a simulated ceiling camera and its detector.

    Attributes:
        p_miss: chance a visible person is not detected in a frame.
        fp_per_frame: mean number of false positives per frame (Poisson).
        jitter_frac: standard deviation of box-edge noise, as a fraction of the box height.
        p_occluded_miss: chance a person standing behind a car (from the camera's view) is missed;
            otherwise the box is cut at the car's roof line, so its bottom edge lies too high.
        car_height_m: height of display cars, for the occlusion silhouettes.
        reid_identity, reid_identity_spread, reid_identity_dims: how far people's appearances lie from
            the average appearance (median, and log-normal spread between people), and in how many
            independent directions (`edge.sim.appearance`).
        reid_view, reid_view_dims: per-box appearance noise (pose, light, crop), relative to a person's
            appearance, and in how many directions.
        reid_cut_factor: noise multiplier for a box cut at a car's roof line.
        reid_overlap_mix: how much of the person in front an overlapped box's embedding takes, per unit
            of covered box area.
        reid_staff_individual: how far a staff member's appearance strays from the uniform's.
    The `reid_*` scales are fitted to the product's re-identification model on real footage (PETS09-S2L1
    ground-truth crops); the roof-line and overlap terms are assumptions (no such footage to fit them).
    """

    p_miss: float = 0.05
    fp_per_frame: float = 0.03
    jitter_frac: float = 0.02
    p_occluded_miss: float = 0.5
    car_height_m: float = 1.5
    reid_identity: float = 0.3
    reid_identity_spread: float = 0.7
    reid_identity_dims: int = 8
    reid_view: float = 0.4
    reid_view_dims: int = 4
    reid_cut_factor: float = 1.5
    reid_overlap_mix: float = 0.5
    reid_staff_individual: float = 0.25

    @classmethod
    def perfect(cls) -> NoiseModel:
        """No faults at all (persons inside cars still vanish: that is geometry, not noise)."""
        return cls(
            p_miss=0.0,
            fp_per_frame=0.0,
            jitter_frac=0.0,
            p_occluded_miss=0.0,
            car_height_m=0.0,
            reid_view=0.0,
            reid_overlap_mix=0.0,
        )


@dataclass(frozen=True)
class Outage:
    """A window `[start_s, end_s)` (seconds since the scenario's start) in which something is down."""

    start_s: float
    end_s: float
    camera_index: int | None = None
    """For camera outages: which of the node's cameras (0-based) delivers no frames."""

    def covers(self, t_s: float) -> bool:
        return self.start_s <= t_s < self.end_s


@dataclass(frozen=True)
class Scenario:
    """One named situation; see `SCENARIOS`."""

    name: str
    description: str
    start_local: datetime
    """Naive store-local time at which the simulation starts (its weekday and hour set the rhythm)."""
    duration_s: float
    """Visitors arrive during this long; the simulation then runs on until the last one has left."""
    rate_per_h: float | None = None
    """Fixed visitors per hour; None follows the daily rhythm (`behaviour.visitor_rate_per_h`)."""
    rate_scale: float = 1.0
    """Multiplies the rate: a busier or a quieter store than the typical one."""
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    n_staff: int = 3
    noise: NoiseModel = field(default_factory=NoiseModel)
    camera_outages: tuple[Outage, ...] = ()
    detector_outages: tuple[Outage, ...] = ()
    """Windows in which a camera delivers frames but its detector finds no one (a failed model, a lens
    fogged over): the node must report it, not count an empty store."""
    broker_outages: tuple[Outage, ...] = ()

    def start_utc(self, timezone: str) -> datetime:
        """The scenario's start as a UTC instant, for a store in `timezone`."""
        return self.start_local.replace(tzinfo=zoneinfo.ZoneInfo(timezone)).astimezone(UTC)

    @property
    def endless(self) -> bool:
        return math.isinf(self.duration_s)

    def with_duration(self, duration_s: float) -> Scenario:
        return replace(self, duration_s=duration_s)

    def camera_down(self, camera_index: int, t_s: float) -> bool:
        return any(o.camera_index == camera_index and o.covers(t_s) for o in self.camera_outages)

    def detector_blind(self, camera_index: int, t_s: float) -> bool:
        return any(o.camera_index == camera_index and o.covers(t_s) for o in self.detector_outages)


_TUESDAY = datetime(2026, 11, 17)
_WEDNESDAY = datetime(2026, 11, 18)
_SATURDAY = datetime(2026, 11, 21)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="quiet-weekday",
            description="Tuesday 09:30-10:30: a trickle of visitors, two staff.",
            start_local=_TUESDAY.replace(hour=9, minute=30),
            duration_s=3600,
            n_staff=2,
        ),
        Scenario(
            name="saturday-peak",
            description="Saturday 14:00-15:00: 165+ visitors an hour, families and couples, four staff.",
            start_local=_SATURDAY.replace(hour=14),
            duration_s=3600,
            n_staff=4,
        ),
        Scenario(
            name="groups-at-door",
            description="Groups of 2-4 walking through the door side by side, 150 visitors an hour.",
            start_local=_SATURDAY.replace(hour=14),
            duration_s=1200,
            rate_per_h=150,
            behaviour=BehaviourParams(group_size_p=(0.0, 0.3, 0.4, 0.3), side_by_side=True),
            n_staff=3,
        ),
        Scenario(
            name="door-counterflow",
            description=(
                "Saturday afternoon, 150 visitors an hour: half the groups come in while someone walks out "
                "through the same door (1-3 s apart), groups of up to four, one in five stopping on the line."
            ),
            start_local=_SATURDAY.replace(hour=14),
            duration_s=1200,
            rate_per_h=150,
            behaviour=BehaviourParams(group_size_p=(0.4, 0.2, 0.3, 0.1), p_counterflow=0.5, p_hesitate=0.2),
            n_staff=3,
        ),
        Scenario(
            name="staff-heavy",
            description="Wednesday 15:00-16:00: nine staff walking the floor and talking to most visitors.",
            start_local=_WEDNESDAY.replace(hour=15),
            duration_s=3600,
            behaviour=BehaviourParams(p_consult=0.85, staff_patrol_p=0.5),
            n_staff=9,
        ),
        Scenario(
            name="camera-outage",
            description="Saturday 11:00-11:30 with the first camera dark from minute 10 to minute 20.",
            start_local=_SATURDAY.replace(hour=11),
            duration_s=1800,
            n_staff=3,
            camera_outages=(Outage(600, 1200, camera_index=0),),
        ),
        Scenario(
            name="launch-crowd",
            description=(
                "A car launch, Saturday 14:00-14:10: 1,500 visitors an hour, 80-120 on the floor at once "
                "from minute 5 on."
            ),
            start_local=_SATURDAY.replace(hour=14),
            duration_s=600,
            rate_per_h=1500,
            n_staff=4,
        ),
        Scenario(
            name="detector-blind",
            description=(
                "Saturday 11:00-11:20 with the first camera's detector finding no one from minute 2 to "
                "minute 12 while its frames keep arriving."
            ),
            start_local=_SATURDAY.replace(hour=11),
            duration_s=1200,
            n_staff=3,
            detector_outages=(Outage(120, 720, camera_index=0),),
        ),
        Scenario(
            name="broker-outage",
            description="Saturday 11:00-11:30 with the MQTT broker unreachable from minute 10 to minute 20.",
            start_local=_SATURDAY.replace(hour=11),
            duration_s=1800,
            n_staff=3,
            broker_outages=(Outage(600, 1200),),
        ),
        Scenario(
            name="demo",
            description="Endless live showroom at a steady 120 visitors an hour, whatever the clock says.",
            start_local=_SATURDAY.replace(hour=14),
            duration_s=math.inf,
            rate_per_h=120,
            n_staff=3,
        ),
    )
}
LIBRARY = tuple(name for name in SCENARIOS if name != "demo")
"""The finite scenarios that `showroom sim evaluate` and BENCHMARKS.md cover."""


class UnknownScenarioError(KeyError):
    def __str__(self) -> str:
        return f"unknown scenario {self.args[0]!r}; known: {', '.join(SCENARIOS)}"


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise UnknownScenarioError(name) from None


__all__ = ["LIBRARY", "SCENARIOS", "NoiseModel", "Outage", "Scenario", "UnknownScenarioError", "get_scenario"]
