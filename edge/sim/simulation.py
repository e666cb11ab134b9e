"""Who is where, when: the scripted people of one scenario on one node's floor.

`Simulation` draws visitor groups as a (thinned) Poisson process following the scenario's rate, scripts
each group, hands their wishes to talk to staff to free staff members, and fills the staff's idle time
with their routines. It extends itself on demand, so a live `sim://` camera can run for ever.
"""

from __future__ import annotations

import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from edge.config import NodeConfig
from edge.sim.behaviour import Consult, DoorPass, GroupScript, Person, StaffMember, visitor_rate_per_h
from edge.sim.scenarios import Scenario
from edge.sim.world import Vec, World

_CHUNK_S = 300.0
_MAX_RATE_PER_H = 400.0


@dataclass(frozen=True)
class Samples:
    """Everyone's position on a regular time grid, one row per (frame, person), sorted by frame.

    Attributes:
        frame: int64 (M,) frame numbers; frame k is at `t0_s + k * dt_s`.
        pid: int64 (M,) person index in `Simulation.people()`.
        xy_m: float64 (M, 2) floor positions, metres.
        seated: bool (M,) sitting inside a display car (hidden from ceiling cameras).
        staff: bool (M,) the person is staff.
    """

    t0_s: float
    dt_s: float
    n_frames: int
    frame: npt.NDArray[np.int64]
    pid: npt.NDArray[np.int64]
    xy_m: Vec
    seated: npt.NDArray[np.bool_]
    staff: npt.NDArray[np.bool_]

    def bounds(self) -> npt.NDArray[np.int64]:
        """(n_frames + 1,) row offsets: frame k's rows are `bounds[k]:bounds[k + 1]`."""
        return np.searchsorted(self.frame, np.arange(self.n_frames + 1)).astype(np.int64)


class Simulation:
    """One scenario, one seed, one node's floor.

    Args:
        config: the node configuration (floor, doors, cars, staff areas, cameras).
        scenario: what happens.
        seed: fixes every random choice; the same three inputs give the same people.
        start_utc: the instant of simulation time 0 (default: the scenario's own start in the store's zone).
    """

    def __init__(
        self, config: NodeConfig, scenario: Scenario, seed: int, start_utc: datetime | None = None
    ) -> None:
        self.config = config
        self.scenario = scenario
        self.seed = seed
        self.world = World(config)
        self.start_utc = start_utc if start_utc is not None else scenario.start_utc(config.timezone)
        self._tz = config.tz()
        self._rng = np.random.default_rng([seed, zlib.crc32(scenario.name.encode())])
        self._groups = GroupScript(self.world, self._rng, scenario.behaviour)
        sizes = np.asarray(scenario.behaviour.group_size_p, dtype=np.float64)
        self._size_p = sizes / sizes.sum()
        self._mean_size = float((np.arange(1, len(sizes) + 1) * self._size_p).sum())
        self._visitors: list[Person] = []
        self._staff = [
            StaffMember(
                i, self.world.staff_post(i, self._rng), 0.0, floor_role=(i > 0 or scenario.n_staff == 1)
            )
            for i in range(scenario.n_staff)
        ]
        self._next_arrival_s = 0.0
        self._built_to_s = 0.0
        self._n_groups = 0
        self._met: set[DoorPass] = set()
        self._lock = threading.RLock()
        self._people_cache: list[Person] | None = None
        self._starts = np.zeros(0)
        self._ends = np.zeros(0)
        fixed = (scenario.rate_per_h or 0.0) * scenario.rate_scale
        self._max_rate_per_h = max(_MAX_RATE_PER_H, fixed)
        """The thinning's candidate rate: above any rate of the daily rhythm, or a crowd's fixed rate."""

    # -- building ------------------------------------------------------------------------------------

    def rate_per_h(self, t_s: float) -> float:
        """Visitors per hour expected at simulation time `t_s`."""
        if self.scenario.rate_per_h is not None:
            return self.scenario.rate_per_h * self.scenario.rate_scale
        local = (self.start_utc + timedelta(seconds=t_s)).astimezone(self._tz)
        return visitor_rate_per_h(local) * self.scenario.rate_scale

    def extend_to(self, t_s: float) -> None:
        """Script every group arriving before `t_s` (and the staff's day up to then)."""
        with self._lock:
            horizon = min(t_s, self.scenario.duration_s)
            consults: list[Consult] = []
            group_rate_max = self._max_rate_per_h / self._mean_size / 3600.0
            while True:
                # Thinning: candidate arrivals at the maximum rate, kept with probability rate / max.
                candidate = self._next_arrival_s + float(self._rng.exponential(1.0 / group_rate_max))
                if candidate >= horizon:
                    break
                self._next_arrival_s = candidate
                accept = self.rate_per_h(candidate) / self._max_rate_per_h
                if self._rng.random() >= accept:
                    continue
                size = 1 + int(self._rng.choice(len(self._size_p), p=self._size_p))
                meet = self._exit_to_meet(candidate)
                people, wanted = self._groups.build(
                    candidate, size, len(self._visitors), self._n_groups, meet
                )
                self._n_groups += 1
                self._visitors += people
                consults += wanted
            for consult in sorted(consults, key=lambda c: c.t0_s):
                self._assign(consult)
            for member in self._staff:
                member.idle_until(t_s, self.world, self._rng, self.scenario.behaviour.staff_patrol_p)
            self._built_to_s = max(self._built_to_s, t_s)
            self._people_cache = None

    def _exit_to_meet(self, t_s: float) -> DoorPass | None:
        """With `p_counterflow`, the next visitor walking out after `t_s` (not met yet) whom the group
        arriving at `t_s` meets in the doorway instead of arriving then; None otherwise."""
        p = self.scenario.behaviour.p_counterflow
        if p <= 0 or self._rng.random() >= p:
            return None
        pending = [e for e in self._groups.exits if e.t_s > t_s + 5.0 and e not in self._met]
        if not pending:
            return None
        meet = min(pending, key=lambda e: e.t_s)
        self._met.add(meet)
        return meet

    def _assign(self, consult: Consult) -> None:
        """Send a free floor staff member to the group (none free: the group is not received)."""
        floor_staff = [s for s in self._staff if s.floor_role] or self._staff
        free = [(s, s.travel_s(self.world, consult.spot_m)) for s in floor_staff]
        free = [(s, travel) for s, travel in free if s.builder.now <= consult.t0_s - travel]
        if not free:
            return  # everyone busy: the group waits and leaves without being received
        member, travel = free[int(self._rng.integers(len(free)))]
        member.idle_until(
            consult.t0_s - travel, self.world, self._rng, self.scenario.behaviour.staff_patrol_p
        )
        member.attend(consult, self.world, self._rng)

    def finish(self) -> float:
        """Script the whole (finite) scenario; returns the end: 30 s after the last visitor left."""
        if self.scenario.endless:
            raise ValueError(f"scenario {self.scenario.name!r} is endless; it has no end to run to")
        self.extend_to(self.scenario.duration_s)
        end = max([p.end_s for p in self._visitors], default=self.scenario.duration_s) + 30.0
        end = max(end, self.scenario.duration_s)
        self.extend_to(end)
        return end

    # -- reading -------------------------------------------------------------------------------------

    @property
    def built_to_s(self) -> float:
        return self._built_to_s

    def people(self) -> list[Person]:
        """Visitors first (pid 0..), then staff, each with their script up to `built_to_s`."""
        with self._lock:
            if self._people_cache is None:
                n = len(self._visitors)
                staff = [m.builder.build(n + i, "staff", -1) for i, m in enumerate(self._staff)]
                self._people_cache = self._visitors + staff
                self._starts = np.array([p.start_s for p in self._people_cache])
                self._ends = np.array([p.end_s for p in self._people_cache])
            return self._people_cache

    def samples(self, t0_s: float, n_frames: int, dt_s: float) -> Samples:
        """Everyone present on the grid `t0_s + k * dt_s`, k = 0 .. n_frames - 1."""
        t_last = t0_s + (n_frames - 1) * dt_s
        if t_last > self._built_to_s:
            self.extend_to(t_last + (_CHUNK_S if self.scenario.endless else 0.0))
        people = self.people()
        with self._lock:
            active = np.flatnonzero((self._starts <= t_last) & (self._ends >= t0_s))
        frames, pids, xys, seats = [], [], [], []
        for i in active:
            person = people[int(i)]
            k0 = max(0, int(np.ceil((person.start_s - t0_s) / dt_s - 1e-9)))
            k1 = min(n_frames - 1, int(np.floor((person.end_s - t0_s) / dt_s + 1e-9)))
            if k1 < k0:
                continue
            k = np.arange(k0, k1 + 1, dtype=np.int64)
            t = t0_s + k * dt_s
            frames.append(k)
            pids.append(np.full(k.shape, person.pid, dtype=np.int64))
            xys.append(person.positions(t))
            seats.append(person.seated_mask(t))
        if not frames:
            empty = np.zeros(0, dtype=np.int64)
            return Samples(
                t0_s, dt_s, n_frames, empty, empty, np.zeros((0, 2)), np.zeros(0, bool), np.zeros(0, bool)
            )
        frame = np.concatenate(frames)
        order = np.argsort(frame, kind="stable")
        pid = np.concatenate(pids)[order]
        n_visitors = len(self._visitors)
        return Samples(
            t0_s=t0_s,
            dt_s=dt_s,
            n_frames=n_frames,
            frame=frame[order],
            pid=pid,
            xy_m=np.concatenate(xys)[order],
            seated=np.concatenate(seats)[order],
            staff=pid >= n_visitors,
        )

    def ts_utc(self, t_s: float) -> datetime:
        return self.start_utc + timedelta(seconds=t_s)


__all__ = ["Samples", "Simulation"]
