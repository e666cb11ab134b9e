"""Visitors who sit in a display car, invisible from the ceiling, and come back out minutes later.

The tracker drops a track that stays hidden; the analytics park the visit "in" the car and hand it to the
track that starts at that car again: one visitor, one car entry, browse dwell running through the sitting.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from showroom_builders import END, FPS, T0, Scene, config_dict, hidden, line, looks, make_config, stay

from edge.analytics.visits import Visit

OUT = (10.0, 21.5)
DOOR_IN = (10.0, 18.0)
CAR_DOOR = (4.6, 6.0)  # in car-1's west door area
CAR_SEAT = (6.0, 6.0)  # on car-1's footprint
CAR2_DOOR = (16.4, 8.0)  # in car-2's east door area
CAR2_SEAT = (15.0, 8.0)  # on car-2's footprint

CAR_2: dict[str, Any] = {
    "id": "car-2",
    "model_name": "Second test car",
    "browse_zone_m": [[11, 5], [18, 5], [18, 12], [11, 12]],
    "interior_zone_m": [[13, 7], [16, 7], [16, 9], [13, 9]],
    "door_areas_m": [[[15.8, 7.5], [17, 7.5], [17, 8.5], [15.8, 8.5]]],
}


def two_car_config() -> Any:
    base = config_dict()
    return make_config(cars=[*base["cars"], CAR_2])


def sit_in(door: tuple[float, float], seat: tuple[float, float], start: tuple[float, float]) -> list[Any]:
    """Walk in through the store door to a car door, step onto the seat, vanish: the track ends."""
    return [*line(OUT, start, 3), *line(start, door, 6), *line(door, seat, 0.6), *hidden(4), END]


def get_out(after: int, seat: tuple[float, float], door: tuple[float, float], hidden_s: float) -> list[Any]:
    """A new track `hidden_s` after the first one ended: out of the car and out of the store."""
    path: list[Any] = [None] * (after + round(hidden_s * FPS))
    path += [*stay(seat, 0.4), *line(seat, door, 0.6), *line(door, DOOR_IN, 6), *line(DOOR_IN, OUT, 3), OUT]
    return path


def test_sitting_invisible_for_three_minutes_is_one_visitor_with_one_entry_and_continuous_dwell() -> None:
    scene = Scene()
    first = sit_in(CAR_DOOR, CAR_SEAT, DOOR_IN)
    scene.play({1: first, 2: get_out(len(first), CAR_SEAT, CAR_DOOR, 180)})
    assert len(scene.of_type("visit.started")) == 1
    (entry,) = scene.of_type("car.entry")
    assert entry.car_id == "car-1"
    assert 184.0 <= entry.inside_s <= 186.0  # from the last sighting on the seat to stepping out
    (dwell,) = scene.of_type("zone.dwell")  # one stay in the browse zone, not cut by the sitting
    assert dwell.zone_id == "car-1"
    assert 188.0 <= dwell.dwell_s <= 192.0
    (ended,) = scene.of_type("visit.ended")
    assert ended.end_reason == "door" and ended.entered_car is True and ended.browsed is True
    assert ended.visitor_id == entry.visitor_id == dwell.visitor_id
    assert scene.analytics.occupancy == 0


def test_two_people_in_two_cars_each_get_their_own_entry() -> None:
    scene = Scene(config=two_car_config())
    a = sit_in(CAR_DOOR, CAR_SEAT, (9.5, 18.0))
    b = sit_in(CAR2_DOOR, CAR2_SEAT, (10.5, 18.0))
    # Both vanish at the same time; the one in car-2 gets out first (100 s), the one in car-1 later (150 s).
    scene.play(
        {
            1: a,
            2: b,
            3: get_out(len(a), CAR_SEAT, CAR_DOOR, 150),
            4: get_out(len(b), CAR2_SEAT, CAR2_DOOR, 100),
        }
    )
    started = scene.of_type("visit.started")
    assert len(started) == 2
    entries = {e.car_id: e for e in scene.of_type("car.entry")}
    assert sorted(entries) == ["car-1", "car-2"]
    assert entries["car-1"].visitor_id != entries["car-2"].visitor_id
    assert 154.0 <= entries["car-1"].inside_s <= 156.0
    assert 104.0 <= entries["car-2"].inside_s <= 106.0
    ended = scene.of_type("visit.ended")
    assert len(ended) == 2 and all(e.end_reason == "door" and e.entered_car for e in ended)
    dwell = {d.zone_id: d for d in scene.of_type("zone.dwell")}
    assert dwell["car-1"].visitor_id == entries["car-1"].visitor_id and dwell["car-1"].dwell_s >= 150
    assert dwell["car-2"].visitor_id == entries["car-2"].visitor_id and dwell["car-2"].dwell_s >= 100


def test_vanishing_at_a_car_door_and_turning_up_elsewhere_much_later_is_no_entry() -> None:
    scene = Scene()
    # Lost in the car's door area (never on its footprint); two minutes later someone appears across the
    # floor and leaves. Not seen getting out of the car: no entry, and the visit is not handed on.
    first = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, CAR_DOOR, 6), *stay(CAR_DOOR, 1), *hidden(4), END]
    elsewhere = (14.0, 14.0)
    second: list[Any] = [None] * (len(first) + round(120 * FPS))
    second += [*stay(elsewhere, 2), *line(elsewhere, DOOR_IN, 4), *line(DOOR_IN, OUT, 3), OUT]
    scene.play({1: first, 2: second})
    assert scene.of_type("car.entry") == []
    assert len(scene.of_type("visit.started")) == 1
    assert scene.of_type("visit.ended") == []  # still waited for (it vanished at a car)
    scene.flush()
    (ended,) = scene.of_type("visit.ended")
    assert ended.entered_car is False and ended.end_reason == "shutdown"


def test_a_visitor_lost_in_a_car_is_given_up_after_in_car_max_s() -> None:
    scene = Scene(config=make_config(thresholds={"in_car_max_s": 120}))
    first = sit_in(CAR_DOOR, CAR_SEAT, DOOR_IN)
    scene.play({1: first, 2: [None] * (len(first) + round(130 * FPS)) + [*stay(CAR_SEAT, 1)]})
    (ended,) = scene.of_type("visit.ended")
    assert ended.end_reason == "lost"
    assert scene.of_type("car.entry") == []  # 0.6 s seen on the seat before vanishing: not an entry
    assert len(scene.of_type("visit.started")) == 1


def test_browse_dwell_runs_on_across_a_short_track_break() -> None:
    scene = Scene()
    spot = (3.0, 3.0)  # in car-1's browse zone, away from the car
    first = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, spot, 6), *stay(spot, 6), *hidden(4), END]
    second: list[Any] = [None] * (len(first) + round(2 * FPS))
    second += [*stay((3.3, 3.2), 8), *line((3.3, 3.2), DOOR_IN, 6), *line(DOOR_IN, OUT, 3), OUT]
    scene.play({1: first, 2: second})
    (dwell,) = scene.of_type("zone.dwell")
    # ~2.4 s walking in the zone, 6 s seen, 6 s unseen (4 s kept by the tracker, 2 s without a track),
    # 8 s seen again, ~2 s walking out of the zone: one stay of ~24 s, not two short ones.
    assert 23.0 <= dwell.dwell_s <= 26.0
    assert len(scene.of_type("visit.started")) == 1
    (ended,) = scene.of_type("visit.ended")
    assert ended.end_reason == "door" and ended.browsed is True


def test_a_second_track_already_on_the_person_takes_the_visit_when_the_first_ends() -> None:
    scene = Scene()
    spot = (10.0, 12.0)
    first = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, spot, 6), *stay(spot, 4), END]
    # The tracker has followed the same person with a second track for 4 s when the first one ends (a
    # duplicate from two cameras, or a swap in a crowd); it is theirs, and they walk out with it.
    near = (10.4, 12.1)
    second: list[Any] = [None] * (len(first) - 1 - round(4 * FPS))
    second += [*stay(near, 6), *line(near, DOOR_IN, 5), *line(DOOR_IN, OUT, 3), OUT]
    scene.play({1: first, 2: second})
    assert len(scene.of_type("visit.started")) == 1
    (ended,) = scene.of_type("visit.ended")
    assert ended.end_reason == "door"


def test_a_track_far_from_where_a_visitor_vanished_does_not_take_the_visit() -> None:
    scene = Scene()
    spot = (10.0, 12.0)
    first = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, spot, 6), *stay(spot, 4), END]
    far = (3.0, 12.0)  # someone else 7 m away, tracked all along
    second: list[Any] = [None] * (len(first) - 1 - round(4 * FPS))
    second += [*stay(far, 6), *line(far, DOOR_IN, 5), *line(DOOR_IN, OUT, 3), OUT]
    scene.play({1: first, 2: second})
    assert scene.of_type("visit.ended") == []  # still waited for (lost_after_s)


def test_with_appearance_someone_at_the_car_door_does_not_take_the_visit_of_the_person_who_sat_in() -> None:
    # The visitor (track 1) sits in car-1 for a minute; a passer-by (track 2) already stands at that car
    # door when the visitor's track ends. On position alone the passer-by takes the visit over (a 4 s
    # "entry" ends as they are seen outside, and the visitor walks out on a track no visit holds); when the
    # passer-by looks like somebody else, the visit waits in the car for the visitor to get out.
    first = sit_in(CAR_DOOR, CAR_SEAT, DOOR_IN)
    passer: list[Any] = [None] * (len(first) - round(6 * FPS))
    passer += [*stay((4.2, 6.6), 8), *line((4.2, 6.6), (4.2, 14.0), 6), *stay((4.2, 14.0), 40)]
    back = get_out(len(first), CAR_SEAT, CAR_DOOR, 60)
    outcome = {}
    for name, config in (("position only", make_config()), ("appearance", make_config(tracker={"reid": {}}))):
        scene = Scene(config)
        scene.play({1: first, 2: passer, 3: back}, appearance={1: looks(1), 2: looks(2), 3: looks(1)})
        (entry,) = scene.of_type("car.entry")
        ends = [e.end_reason for e in scene.of_type("visit.ended")]
        outcome[name] = (entry.car_id, entry.inside_s > 60, ends)
    assert outcome == {"position only": ("car-1", False, []), "appearance": ("car-1", True, ["door"])}


def test_a_visitor_who_walks_to_the_car_on_a_track_of_no_visit_gets_their_entry() -> None:
    # The visitor's own track breaks at P, 3.5 m from where the tracker already follows them on a second
    # track (too far to take the visit over then: `Relinker.heir`). That second track, on no visit, walks
    # to the car and vanishes into it; 90 s later (longer than `lost_after_s`) they get out and leave. The
    # visit waiting at P is parked in the car when the second track vanishes there: one visit, its entry.
    scene = Scene()
    p = (5.0, 12.0)
    first = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, p, 6), END]
    second: list[Any] = [None] * (len(first) - 5)
    second += [*stay((8.5, 12.5), 1.2), *line((8.5, 12.5), CAR_DOOR, 5), *line(CAR_DOOR, CAR_SEAT, 0.6)]
    second += [*hidden(4), END]
    scene.play({1: first, 2: second, 3: get_out(len(second), CAR_SEAT, CAR_DOOR, 90)})
    (started,) = scene.of_type("visit.started")
    (entry,) = scene.of_type("car.entry")
    (ended,) = scene.of_type("visit.ended")
    assert entry.car_id == "car-1" and entry.visitor_id == started.visitor_id == ended.visitor_id
    assert ended.end_reason == "door" and ended.entered_car is True
    assert scene.analytics.occupancy == 0


def test_a_handed_over_visit_that_starts_waiting_after_its_visitor_got_into_a_car_is_parked_there() -> None:
    # A neighbouring box handed a visit over at P (2 s before), and this box's track of that person, on no
    # visit yet, walked to the car and vanished into it before the hand-over found them; the visit then
    # starts waiting (`Visits.waiting`, as `Handover` does for an offer nobody took in time). It is parked in
    # the car, and their getting out is its car entry.
    scene = Scene()
    anonymous = [*stay((8.0, 9.0), 1), *line((8.0, 9.0), CAR_DOOR, 4), *line(CAR_DOOR, CAR_SEAT, 0.6)]
    anonymous += [*hidden(4), END]
    scene.play({2: anonymous})
    visits = scene.analytics._visits
    handed = Visit("v-0123456789abcdef", "main", scene.t - timedelta(seconds=60), None, T0, (8.5, 9.5))
    handed.confirmed = True
    visits.open[handed.visitor_id] = handed
    visits.waiting(handed)
    assert handed.in_car == "car-1"
    scene.play({3: get_out(0, CAR_SEAT, CAR_DOOR, 90)})
    (entry,) = scene.of_type("car.entry")
    (ended,) = scene.of_type("visit.ended")
    assert entry.car_id == "car-1" and entry.visitor_id == ended.visitor_id == "v-0123456789abcdef"
    assert ended.end_reason == "door" and ended.entered_car is True


def test_someone_who_vanished_into_a_car_before_a_visit_was_last_seen_is_not_its_visitor() -> None:
    scene = Scene()
    anonymous = [*stay((8.0, 9.0), 1), *line((8.0, 9.0), CAR_DOOR, 4), *line(CAR_DOOR, CAR_SEAT, 0.6)]
    scene.play({2: [*anonymous, *hidden(4), END]})
    visits = scene.analytics._visits
    later = Visit("v-fedcba9876543210", "main", scene.t - timedelta(seconds=60), None, scene.t, (8.5, 9.5))
    later.confirmed = True
    visits.open[later.visitor_id] = later
    visits.waiting(later)
    assert later.in_car is None
