"""People on the simulated floor: visitor groups, staff routines and the daily rhythm of arrivals.

Each person's whole stay is scripted up front as a piecewise-linear trajectory (keyframes in seconds
since the simulation's start and floor metres) plus the intervals they sit inside a display car, where a
ceiling camera cannot see them. Scripts are drawn from a seeded random generator, so a seed fixes them.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge.sim.world import OUTSIDE_DOOR_M, SimCar, SimDoor, Vec, World, WorldError

Role = Literal["visitor", "staff"]

OPEN_HOUR = 9
CLOSE_HOUR = 21

# Visitors per hour by local hour of day. A quiet weekday morning, a Saturday afternoon peak of 150+.
WEEKDAY_RATE_PER_H = {
    9: 8,
    10: 12,
    11: 20,
    12: 24,
    13: 26,
    14: 30,
    15: 34,
    16: 33,
    17: 30,
    18: 26,
    19: 20,
    20: 12,
}
SATURDAY_RATE_PER_H = {
    9: 40, 10: 60, 11: 90, 12: 110, 13: 140, 14: 165, 15: 172, 16: 160, 17: 125, 18: 95, 19: 70, 20: 45,
}  # fmt: skip
DAY_FACTOR = {0: 0.9, 1: 0.85, 2: 0.9, 3: 0.95, 4: 1.2, 5: 1.0, 6: 0.85}


def visitor_rate_per_h(local: datetime) -> float:
    """Expected visitors per hour at local time `local` (0 outside opening hours)."""
    hour = local.hour
    if not OPEN_HOUR <= hour < CLOSE_HOUR:
        return 0.0
    weekday = local.weekday()
    table = SATURDAY_RATE_PER_H if weekday >= 5 else WEEKDAY_RATE_PER_H
    return float(table[hour]) * DAY_FACTOR[weekday]


@dataclass
class Person:
    """One person's scripted stay.

    Attributes:
        pid: index of the person in the simulation (not a visitor id; it never leaves the simulator).
        role: visitor or staff.
        group: visitors arriving together share a group number; staff have -1.
        t_s: float64 (K,) keyframe times, seconds since the simulation's start, non-decreasing.
        xy_m: float64 (K, 2) positions at the keyframes, floor metres; straight lines between them.
        seated: (start_s, end_s, car_id) intervals spent sitting inside a display car (hidden from above).
    """

    pid: int
    role: Role
    group: int
    t_s: Vec
    xy_m: Vec
    seated: list[tuple[float, float, str]] = field(default_factory=list)

    @property
    def start_s(self) -> float:
        return float(self.t_s[0])

    @property
    def end_s(self) -> float:
        return float(self.t_s[-1])

    def positions(self, times_s: Vec) -> Vec:
        """Positions (N, 2) at `times_s` (N,), clamped to the first and last keyframe."""
        x = np.interp(times_s, self.t_s, self.xy_m[:, 0])
        y = np.interp(times_s, self.t_s, self.xy_m[:, 1])
        return np.stack([x, y], axis=1)

    def seated_mask(self, times_s: Vec) -> npt.NDArray[np.bool_]:
        mask = np.zeros(times_s.shape, dtype=bool)
        for t0, t1, _ in self.seated:
            mask |= (times_s >= t0) & (times_s < t1)
        return mask


class PathBuilder:
    """Appends keyframes to one person's script: walk, stand about, sit in a car."""

    def __init__(self, t_s: float, xy_m: Vec) -> None:
        self.t: list[float] = [t_s]
        self.xy: list[Vec] = [np.asarray(xy_m, dtype=np.float64)]
        self.seated: list[tuple[float, float, str]] = []

    @property
    def now(self) -> float:
        return self.t[-1]

    @property
    def here(self) -> Vec:
        return self.xy[-1]

    def walk(self, waypoints: list[Vec], speed_mps: float) -> None:
        for wp in waypoints:
            dist = float(np.linalg.norm(wp - self.here))
            if dist < 1e-6:
                continue
            self.t.append(self.now + dist / speed_mps)
            self.xy.append(np.asarray(wp, dtype=np.float64))

    def stay(self, duration_s: float, rng: np.random.Generator, wander_m: float = 0.15) -> None:
        """Stand about for `duration_s` around the current spot, shifting a little every few seconds."""
        if duration_s <= 0:
            return
        spot = self.here
        start, end = self.now, self.now + duration_s
        if end - start > 4.0 and wander_m > 0:
            steps = np.cumsum(rng.uniform(2.5, 6.0, int((end - start) / 2.5) + 1))
            steps = steps[start + steps < end - 1.0]
            offsets = np.clip(rng.normal(0.0, wander_m, (len(steps), 2)), -2 * wander_m, 2 * wander_m)
            self.t += list(start + steps)
            self.xy += list(spot + offsets)
        self.t.append(end)
        self.xy.append(spot.copy())

    def hold_until(self, t_s: float, rng: np.random.Generator, wander_m: float = 0.15) -> None:
        self.stay(t_s - self.now, rng, wander_m)

    def sit(self, car_id: str, duration_s: float) -> None:
        """Sit still where the builder stands (inside a car) for `duration_s`: hidden from above."""
        start = self.now
        self.t.append(start + duration_s)
        self.xy.append(self.here.copy())
        self.seated.append((start, start + duration_s, car_id))

    def build(self, pid: int, role: Role, group: int) -> Person:
        return Person(pid, role, group, np.array(self.t), np.array(self.xy), list(self.seated))


@dataclass(frozen=True)
class BehaviourParams:
    """Tunable behaviour of visitors and staff (defaults: a typical brand showroom)."""

    group_size_p: tuple[float, ...] = (0.45, 0.35, 0.12, 0.08)
    """Probability of a group of 1, 2, 3, 4 ... people."""
    side_by_side: bool = False
    """Groups walk through the door abreast (the hard case for a door counter)."""
    mean_extra_cars: float = 1.6
    """Cars browsed after the first (Poisson mean)."""
    p_skip_cars: float = 0.18
    """Visitors who look in and leave without browsing any car."""
    p_sit: float = 0.16
    """Per browsed car: someone in the group sits in it."""
    p_peek: float = 0.12
    """Per browsed car: someone bends into it without getting in (not an entry)."""
    p_consult: float = 0.45
    """Per group: talks to a salesperson."""
    staff_patrol_p: float = 0.15
    """Per idle spell: a floor staff member walks the floor."""
    p_counterflow: float = 0.0
    """Per group: comes in through a door while someone walks out through it, their crossings of the line
    1-3 s apart (the two meet in the doorway: the hard case for a tracker)."""
    p_hesitate: float = 0.0
    """Per entering visitor: stops on the door line for 1-3 s, shifting to and fro within 0.3 m inside it,
    before walking on in."""


@dataclass(frozen=True)
class DoorPass:
    """A visitor crosses door `door_index`'s line at `t_s` (seconds since the simulation's start)."""

    t_s: float
    door_index: int


@dataclass(frozen=True)
class Consult:
    """A group wants a salesperson at `spot_m` from `t0_s` to `t1_s`."""

    t0_s: float
    t1_s: float
    spot_m: Vec


def _member_offsets(size: int, rng: np.random.Generator) -> list[Vec]:
    offsets: list[Vec] = [np.zeros(2)]
    for i in range(1, size):
        angle = 2 * math.pi * i / size + float(rng.uniform(-0.3, 0.3))
        offsets.append(np.array([math.cos(angle), math.sin(angle)]) * 0.55)
    return offsets


class GroupScript:
    """Builds the scripts of one group of visitors arriving together."""

    def __init__(self, world: World, rng: np.random.Generator, params: BehaviourParams) -> None:
        self.world = world
        self.rng = rng
        self.params = params
        self.exits: list[DoorPass] = []
        """Every outward crossing of the groups built so far (for groups meeting them in the doorway)."""

    def build(
        self,
        t_arrive_s: float,
        size: int,
        first_pid: int,
        group: int,
        meet: DoorPass | None = None,
    ) -> tuple[list[Person], list[Consult]]:
        """One group's scripts. `meet`: the group comes in through that door, its first member crossing
        the line 1-3 s before or after that time (`t_arrive_s` is then ignored)."""
        world, rng, params = self.world, self.rng, self.params
        door = world.doors[int(rng.integers(len(world.doors)))]
        speed = float(rng.uniform(0.9, 1.4))
        give_way: Vec | None = None
        wait_s = 0.0
        if meet is not None:
            door = world.doors[meet.door_index]
            apart_s = float(rng.uniform(1.0, 3.0))
            if rng.random() < 0.5:
                # Walks in 1-3 s before or after the one walking out, without stopping.
                apart_s *= 1.0 if rng.random() < 0.5 else -1.0
                t_arrive_s = max(0.0, meet.t_s + apart_s - OUTSIDE_DOOR_M / speed)
            else:
                # Gives way: waits beside the way out, just outside the line, from 1 s before the other
                # crosses it, and walks in 1-3 s after (the two pass within half a metre).
                aside = 0.4 if rng.random() < 0.5 else -0.4
                give_way = door.mid_m + door.along * aside - door.inward * 0.3
                walk_s = float(np.linalg.norm(give_way - door.outside_point(0.0))) / speed
                t_arrive_s = max(0.0, meet.t_s - 1.0 - walk_s)
                wait_s = max(0.0, meet.t_s + apart_s - 0.3 / speed - (t_arrive_s + walk_s))
        along = self._door_offsets(size, door.width_m)
        builders: list[PathBuilder] = []
        for i in range(size):
            lag = 0.0 if params.side_by_side else float(rng.uniform(0.0, 1.2)) * i
            start = door.outside_point(along[i]) - door.inward * (0.0 if params.side_by_side else 0.3 * i)
            if give_way is not None and i == 0:
                b = PathBuilder(t_arrive_s, door.outside_point(0.0))
                b.walk([give_way], speed)
                b.stay(wait_s, rng, wander_m=0.0)
            else:
                b = PathBuilder(t_arrive_s + wait_s + lag, start)
            if params.p_hesitate > 0 and rng.random() < params.p_hesitate:
                self._hesitate(b, door, along[i], speed)
            b.walk([door.inside_point(along[i])], speed)
            builders.append(b)
        self._sync(builders)
        offsets = _member_offsets(size, rng)
        consults: list[Consult] = []
        wants_consult = rng.random() < params.p_consult
        cars = self._cars_to_browse()
        consult_at = int(rng.integers(len(cars) + 1)) if wants_consult else -1
        for k, car in enumerate(cars):
            spot = world.browse_spot(car, rng)
            self._walk_group(builders, offsets, spot, speed)
            dwell = float(np.clip(rng.lognormal(math.log(40.0), 0.75), 3.0, 400.0))
            if k == consult_at:
                talk = float(rng.uniform(20.0, 420.0))
                consults.append(Consult(builders[0].now, builders[0].now + talk, builders[0].here.copy()))
                dwell = max(dwell, talk)
            for b in builders:
                b.stay(dwell, rng)
            self._sync(builders)
            if rng.random() < params.p_sit:
                self._sit(builders, car, speed)
            elif rng.random() < params.p_peek:
                self._peek(builders[int(rng.integers(size))], car, speed)
        if consult_at == len(cars):
            spot = self._desk_spot()
            self._walk_group(builders, offsets, spot, speed)
            talk = float(rng.uniform(20.0, 600.0))
            consults.append(Consult(builders[0].now, builders[0].now + talk, builders[0].here.copy()))
            for b in builders:
                b.stay(talk, rng)
            self._sync(builders)
        exit_door = door if rng.random() < 0.8 else world.doors[int(rng.integers(len(world.doors)))]
        along = self._door_offsets(size, exit_door.width_m)
        for i, b in enumerate(builders):
            inside = exit_door.inside_point(along[i])
            b.walk([*world.route(b.here, inside)], speed)
        self._sync(builders)
        exit_index = next(k for k, d in enumerate(world.doors) if d is exit_door)
        for i, b in enumerate(builders):
            # The line lies between the inside and outside points: crossed after the inside part of the walk.
            inside_m = float(exit_door.side_m(b.here[None])[0])
            self.exits.append(DoorPass(b.now + inside_m / speed, exit_index))
            b.walk([exit_door.outside_point(along[i])], speed)
        people = [b.build(first_pid + i, "visitor", group) for i, b in enumerate(builders)]
        return people, consults

    def _hesitate(self, b: PathBuilder, door: SimDoor, along_m: float, speed: float) -> None:
        """Walk onto the line and stand there 1-3 s, shifting to and fro up to 0.3 m inside it (never back
        over it: the true path crosses the line once, while its detections may cross it several times)."""
        rng = self.rng
        on_line = door.mid_m + door.along * along_m + door.inward * 0.05
        b.walk([on_line], speed)
        end = b.now + float(rng.uniform(1.0, 3.0))
        while b.now < end - 0.4:
            depth = float(rng.uniform(0.05, 0.3))
            b.t.append(b.now + float(rng.uniform(0.3, 0.7)))
            b.xy.append(on_line + door.inward * (depth - 0.05))
        b.t.append(max(end, b.now))
        b.xy.append(on_line.copy())

    def _door_offsets(self, size: int, width_m: float) -> list[float]:
        spacing = 0.6
        half = max(width_m / 2 - 0.25, 0.0)
        raw = [(i - (size - 1) / 2) * spacing for i in range(size)]
        return [float(np.clip(r, -half, half)) for r in raw]

    def _cars_to_browse(self) -> list[SimCar]:
        world, rng = self.world, self.rng
        if not world.cars or rng.random() < self.params.p_skip_cars:
            return []
        n = min(len(world.cars), 1 + int(rng.poisson(self.params.mean_extra_cars)))
        weights = np.array([1.0 + (i % 3) for i in range(len(world.cars))], dtype=np.float64)
        order = rng.choice(len(world.cars), size=n, replace=False, p=weights / weights.sum())
        return [world.cars[int(i)] for i in order]

    def _desk_spot(self) -> Vec:
        world = self.world
        if world.staff_areas:
            desk = world.staff_areas[0]
            around = desk.buffer(3.5).difference(desk.buffer(1.0)).intersection(world.floor)
            try:
                return world.random_spot(self.rng, around)
            except WorldError:
                pass
        return world.random_spot(self.rng)

    def _walk_group(self, builders: list[PathBuilder], offsets: list[Vec], target: Vec, speed: float) -> None:
        route = self.world.route(builders[0].here, target)
        for b, off in zip(builders, offsets, strict=True):
            goal = target + off
            if not self.world.is_open(goal, 0.1):
                goal = target + off * 0.3
            b.walk([*(wp + off for wp in route[:-1]), goal], speed)
        self._sync(builders)

    def _sit(self, builders: list[PathBuilder], car: SimCar, speed: float) -> None:
        rng = self.rng
        n_sit = 1 if len(builders) == 1 or rng.random() < 0.6 else 2
        sitters = rng.choice(len(builders), size=n_sit, replace=False)
        for j, idx in enumerate(sitters):
            b = builders[int(idx)]
            spot = b.here.copy()
            door_index = (j + int(rng.integers(len(car.door_areas)))) % len(car.door_areas)
            door_pt, seat = car.door_point(door_index), car.seat_for(door_index)
            b.walk([*self.world.route(b.here, door_pt)], speed * 0.8)
            b.stay(float(rng.uniform(0.5, 2.0)), rng, wander_m=0.0)
            b.walk([seat], 0.5)
            b.sit(car.id, float(np.clip(rng.lognormal(math.log(40.0), 0.7), 4.0, 300.0)))
            b.walk([door_pt], 0.5)
            b.walk([*self.world.route(door_pt, spot)], speed * 0.8)
        self._sync(builders)

    def _peek(self, b: PathBuilder, car: SimCar, speed: float) -> None:
        """Bend into the car through a door for a second or two without getting in: not an entry."""
        rng = self.rng
        spot = b.here.copy()
        door_index = int(rng.integers(len(car.door_areas)))
        door_pt, seat = car.door_point(door_index), car.seat_for(door_index)
        b.walk([*self.world.route(b.here, door_pt)], speed * 0.8)
        lean = door_pt + (seat - door_pt) * 0.6
        b.walk([lean], 0.6)
        b.stay(float(rng.uniform(0.5, 1.2)), rng, wander_m=0.0)
        b.walk([door_pt], 0.6)
        b.walk([*self.world.route(door_pt, spot)], speed * 0.8)

    def _sync(self, builders: list[PathBuilder]) -> None:
        latest = max(b.now for b in builders)
        for b in builders:
            b.hold_until(latest, self.rng, wander_m=0.05)


class StaffMember:
    """A staff member's day: resting at a post in a staff area, meeting visitors, walking the floor."""

    def __init__(self, pid: int, post_m: Vec, t0_s: float, floor_role: bool) -> None:
        self.pid = pid
        self.post = post_m
        self.floor_role = floor_role
        self.builder = PathBuilder(t0_s, post_m)
        self.speed = 1.2

    def travel_s(self, world: World, target: Vec) -> float:
        route = world.route(self.post, target)
        pts = [self.post, *route]
        return sum(float(np.linalg.norm(b - a)) for a, b in itertools.pairwise(pts)) / self.speed

    def idle_until(self, t_s: float, world: World, rng: np.random.Generator, patrol_p: float) -> None:
        b = self.builder
        while t_s - b.now > 1.0:
            remaining = t_s - b.now
            if self.floor_role and remaining > 150 and rng.random() < patrol_p:
                spot = world.random_spot(rng)
                there = world.route(self.post, spot)
                back = world.route(spot, self.post)
                length = (
                    sum(float(np.linalg.norm(q - p)) for p, q in itertools.pairwise([self.post, *there]))
                    * 2
                    / self.speed
                )
                if length + 40 < remaining:
                    b.walk(there, self.speed)
                    b.stay(float(rng.uniform(10, 30)), rng)
                    b.walk(back, self.speed)
                    continue
            b.stay(min(remaining, float(rng.uniform(20, 90))), rng, wander_m=0.12)

    def attend(self, consult: Consult, world: World, rng: np.random.Generator) -> None:
        """Walk to the group, stand beside its leader for the talk, walk back to the post."""
        b = self.builder
        angle = float(rng.uniform(0, 2 * math.pi))
        stand = consult.spot_m + np.array([math.cos(angle), math.sin(angle)]) * 1.0
        if not world.is_open(stand, 0.05):
            stand = consult.spot_m + np.array([math.cos(angle), math.sin(angle)]) * 0.6
        b.walk(world.route(b.here, stand), self.speed)
        b.hold_until(consult.t1_s, rng, wander_m=0.08)
        b.walk(world.route(b.here, self.post), self.speed)


__all__ = [
    "CLOSE_HOUR",
    "DAY_FACTOR",
    "OPEN_HOUR",
    "BehaviourParams",
    "Consult",
    "DoorPass",
    "GroupScript",
    "PathBuilder",
    "Person",
    "StaffMember",
    "visitor_rate_per_h",
]
