"""The door-counterflow scenario: people meeting in doorways, groups, hesitation on the line; its truth."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from edge.config import load_config
from edge.sim.scenarios import get_scenario
from edge.sim.simulation import Simulation
from showroom.sim.truth import _crossings, compute_truth

CONFIG = load_config(Path(__file__).parents[3] / "examples" / "sim-store.yaml")


def _door_crossings(sim: Simulation) -> list[tuple[float, int, str, int]]:
    """(time, +1 in / -1 out, door id, pid) of every true crossing of a door line by a visitor."""
    out = []
    for person in sim.people():
        if person.role != "visitor":
            continue
        t = np.arange(person.start_s, person.end_s, 0.05)
        xy = person.positions(t)
        for door in sim.world.doors:
            out += [(ts, d, door.id, person.pid) for ts, d in _crossings(door, t, xy)]
    return sorted(out)


def test_people_meet_in_the_doorway_and_each_crosses_in_once_and_out_once() -> None:
    sim = Simulation(CONFIG, get_scenario("door-counterflow").with_duration(600), seed=11)
    sim.finish()
    crossings = _door_crossings(sim)
    visitors = [p for p in sim.people() if p.role == "visitor"]
    # Hesitating on the line never steps back over it: one inward and one outward crossing each.
    for person in visitors:
        mine = [d for _, d, _, pid in crossings if pid == person.pid]
        assert mine == [1, -1], (person.pid, mine)
    assert compute_truth(sim).visitors == len(visitors)
    # People walking in while others walk out through the same door, 1-3 s apart.
    meetings = sum(
        1
        for a, b in itertools.combinations(crossings, 2)
        if a[2] == b[2] and a[1] != b[1] and abs(a[0] - b[0]) <= 3.0 and a[3] != b[3]
    )
    assert meetings >= len(visitors) // 4
    # Groups of three or more.
    sizes = np.bincount([p.group for p in visitors])
    assert (sizes >= 3).sum() >= 3


def test_someone_hesitates_on_the_line_inside_the_hysteresis_band() -> None:
    sim = Simulation(CONFIG, get_scenario("door-counterflow").with_duration(600), seed=11)
    sim.finish()
    hesitated = 0
    for person in sim.people():
        if person.role != "visitor":
            continue
        t = np.arange(person.start_s, person.start_s + 10.0, 0.1)
        side = sim.world.doors[0].side_m(person.positions(t))  # both doors lie on one line
        # Standing on the line: at least a second within 0.35 m inside it on the way in.
        if ((side > 0) & (side < 0.35)).sum() >= 10:
            hesitated += 1
    assert hesitated >= 2
