"""Ground truth on handcrafted people: each DOMAIN.md definition, its threshold and its traps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from edge.config import load_config
from edge.events import EventStamper, IdSource
from edge.sim.behaviour import PathBuilder, Person
from edge.sim.world import World
from showroom.sim.evaluate import compare, measure
from showroom.sim.truth import truth_of

CONFIG = load_config(Path(__file__).parents[3] / "examples" / "sim-store.yaml")
WORLD = World(CONFIG)
T0 = datetime(2026, 11, 21, 6, 0, tzinfo=UTC)
RNG = np.random.default_rng(0)
MAIN = WORLD.doors[0]


def visitor(*steps: tuple[str, object], t0: float = 0.0, pid: int = 0, door_offset: float = 0.0) -> Person:
    """A visitor entering by the main door, doing `steps`, leaving by the same door."""
    b = PathBuilder(t0, MAIN.outside_point(door_offset))
    b.walk([MAIN.inside_point(door_offset)], 1.2)
    for kind, arg in steps:
        if kind == "go":
            b.walk(WORLD.route(b.here, np.asarray(arg, dtype=float)), 1.2)
        elif kind == "straight":
            b.walk([np.asarray(arg, dtype=float)], 0.5)
        elif kind == "stay":
            b.stay(float(arg), RNG, wander_m=0.0)  # type: ignore[arg-type]
        elif kind == "sit":
            b.sit("car-01", float(arg))  # type: ignore[arg-type]
    b.walk([*WORLD.route(b.here, MAIN.inside_point(door_offset))], 1.2)
    b.walk([MAIN.outside_point(door_offset)], 1.2)
    return b.build(pid, "visitor", pid)


def staff_at(xy: tuple[float, float], start: float, end: float, pid: int = 99) -> Person:
    b = PathBuilder(start, np.array(xy))
    b.stay(end - start, RNG, wander_m=0.0)
    return b.build(pid, "staff", -1)


def truth(*people: Person):
    return truth_of(WORLD, list(people), T0, CONFIG.thresholds, dt_s=0.1)


CAR1 = WORLD.cars[0]
BROWSE_SPOT = (5.4, 8.2)  # in car-01's browse zone, on the side facing the doors


def test_visit_counts_inward_crossings_and_lasts_until_the_outward_one() -> None:
    gt = truth(visitor(("go", BROWSE_SPOT), ("stay", 5)))
    assert gt.visitors == 1
    v = gt.visits[0]
    assert v.door_in == "main" and v.door_out == "main"
    assert 0.0 < v.start_s < 2.0 and v.end_s > v.start_s + 5


def test_staff_walking_through_the_door_is_not_a_visitor() -> None:
    person = visitor(("go", BROWSE_SPOT), ("stay", 60))
    staff = Person(5, "staff", -1, person.t_s, person.xy_m)
    assert truth(staff).visitors == 0


def test_walking_past_outside_the_door_segment_is_not_a_visit() -> None:
    b = PathBuilder(0.0, np.array([10.0, 21.0]))
    b.walk([np.array([10.0, 18.0]), np.array([10.0, 21.0])], 1.2)  # crosses y = 19.6 at x = 10: no door there
    assert truth(b.build(0, "visitor", 0)).visitors == 0


@pytest.mark.parametrize(("stay_s", "browsed"), [(12.0, True), (8.0, False)])
def test_car_browser_needs_browse_min_s_in_a_browse_zone(stay_s: float, browsed: bool) -> None:
    gt = truth(visitor(("go", BROWSE_SPOT), ("stay", stay_s)))
    assert gt.car_browsers == int(browsed)
    if browsed:
        dwell = gt.visits[0].dwells[0]
        assert dwell.place == "car-01"
        # The stay plus the walk inside the zone from its edge to the spot (< 1 m at 1.2 m/s) and back.
        assert stay_s <= dwell.seconds <= stay_s + 2 * 1.0 / 1.2


def sit_in_car(seconds: float, *, via_door: bool = True) -> Person:
    door_pt, seat = CAR1.door_point(0), CAR1.seat_for(0)
    if via_door:
        return visitor(("go", door_pt), ("straight", seat), ("sit", seconds), ("straight", door_pt))
    side = np.array([2.2, 6.0])  # the car's end, no door area there
    inside = np.array([3.4, 6.0])
    return visitor(("go", side), ("straight", inside), ("stay", seconds), ("straight", side))


def test_sitting_in_a_car_through_its_door_is_an_entry() -> None:
    gt = truth(sit_in_car(5.0))
    assert gt.car_entrants == 1
    entry = gt.visits[0].entries[0]
    assert entry.place == "car-01" and entry.seconds >= 5.0


def test_bending_into_a_car_is_not_an_entry() -> None:
    assert truth(sit_in_car(1.0)).car_entrants == 0


def test_getting_into_the_car_body_other_than_by_a_door_is_not_an_entry() -> None:
    assert truth(sit_in_car(6.0, via_door=False)).car_entrants == 0


def test_reception_needs_reception_min_s_within_the_radius_of_staff() -> None:
    near = visitor(("go", (16.0, 16.0)), ("stay", 40))
    t_arrive = float(near.t_s[2])
    staff_near = staff_at((16.0, 17.2), t_arrive, t_arrive + 40)  # 1.2 m away, all the time
    assert truth(near, staff_near).received == 1
    staff_short = staff_at((16.0, 17.2), t_arrive, t_arrive + 20)
    assert truth(near, staff_short).received == 0
    staff_far = staff_at((16.0, 18.0), t_arrive, t_arrive + 40)  # 2 m away
    assert truth(near, staff_far).received == 0


def test_heat_counts_visitor_person_seconds_in_cells_and_never_staff() -> None:
    v = visitor(("go", (10.1, 16.1)), ("stay", 30))
    gt = truth(v)
    cell = (int(10.1 / 0.25), int(16.1 / 0.25))
    at_spot = sum(s for (_, ix, iy), s in gt.heat_s.items() if (ix, iy) == cell)
    assert 30.0 <= at_spot <= 31.0
    in_visit = gt.visits[0].end_s - gt.visits[0].start_s
    on_floor_outside_visit = 0.0  # heat only counts during the visit, on the floor
    assert gt.heat_person_s == pytest.approx(in_visit - on_floor_outside_visit, abs=0.2)
    staff = Person(7, "staff", -1, v.t_s, v.xy_m)
    assert truth(staff).heat_person_s == 0.0


def test_group_side_by_side_counts_each_member() -> None:
    people = [
        visitor(("go", BROWSE_SPOT), ("stay", 12), pid=i, door_offset=o)
        for i, o in enumerate((-0.6, 0.0, 0.6))
    ]
    gt = truth(*people)
    assert gt.visitors == 3 and gt.car_browsers == 3


def test_truth_events_measure_back_to_the_truth_exactly() -> None:
    door_pt, seat = CAR1.door_point(1), CAR1.seat_for(1)
    a = visitor(
        ("go", BROWSE_SPOT),
        ("stay", 20),
        ("go", door_pt),
        ("straight", seat),
        ("sit", 10),
        ("straight", door_pt),
        pid=0,
    )
    b = visitor(("go", (16.0, 16.0)), ("stay", 45), t0=30.0, pid=1)
    s = staff_at((16.0, 17.0), 30.0, 200.0)
    gt = truth(a, b, s)
    events = gt.events(EventStamper(CONFIG.store_id, CONFIG.node_id, IdSource(1)))
    assert [e.seq for e in events] == list(range(len(events)))
    report = compare(gt, measure(events, CONFIG.thresholds), CONFIG)
    assert (gt.visitors, gt.car_browsers, gt.car_entrants, gt.received) == (2, 1, 1, 1)
    for name, metric in report.items():
        assert metric["error"] == pytest.approx(0.0, abs=1e-3), name
    assert report["heat"]["distribution_error"] == pytest.approx(0.0, abs=1e-3)
