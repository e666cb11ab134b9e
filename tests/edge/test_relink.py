"""Re-linking decisions on plain data: walking reach, appearance, and the choice among lost people."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
from shapely.geometry import Polygon

from edge.tracking.base import TrackState
from edge.tracking.relink import (
    CAR_RELINK_M,
    Candidate,
    LostVisitor,
    Relinker,
    Sighting,
    StaffRelink,
    VisitRelink,
    car_left_from,
    door_successor,
    nearest_new_track,
    walking_reach_m,
)
from vision_models.arrays import Float64Array

T0 = datetime(2026, 11, 21, 14, 0, tzinfo=UTC)
LOST_AFTER_S = 30.0
SAME_PERSON = 0.3


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def look(*components: float) -> Float64Array:
    v = np.asarray(components, dtype=np.float64)
    return v / np.linalg.norm(v)


ALICE = look(1.0, 0.0, 0.0)
ALICE_AGAIN = look(1.0, 0.1, 0.0)  # cosine distance ~0.005
BOB = look(0.0, 1.0, 0.0)  # cosine distance 1 from Alice


def track(
    track_id: int,
    first_xy: tuple[float, float],
    seen_s: float,
    xy: tuple[float, float] | None = None,
    appearance: Float64Array | None = None,
) -> TrackState:
    return TrackState(track_id, xy or first_xy, (0.0, 0.0), True, first_xy, at(seen_s), appearance=appearance)


def candidate(t: TrackState, born_s: float) -> Candidate:
    return Candidate(t, at(born_s))


def relinker(reid: bool = True) -> Relinker:
    return Relinker(SAME_PERSON if reid else math.inf, LOST_AFTER_S)


def test_walking_reach_grows_with_the_gap_up_to_a_cap() -> None:
    assert walking_reach_m(0.0) == 2.5
    assert walking_reach_m(5.0) == 7.5
    assert walking_reach_m(100.0) == 12.0


def test_a_new_track_takes_the_nearest_lost_visitor_within_reach_and_time() -> None:
    new = track(7, (10.0, 10.0), seen_s=10.0)
    lost = [
        LostVisitor("far", (10.0, 25.0), at(5.0), None),  # 15 m away, reach 7.5 m
        LostVisitor("near", (12.0, 10.0), at(5.0), None),
        LostVisitor("nearer-but-stale", (11.0, 10.0), at(-25.0), None),  # 35 s > lost_after_s
    ]
    found = relinker().returning(new, at(10.0), None, lost, [])
    assert found == VisitRelink("near", 2.0, from_car=False)


def test_someone_getting_out_of_the_car_they_vanished_into_comes_first_at_any_distance() -> None:
    new = track(7, (5.0, 6.0), seen_s=200.0)
    lost = [
        LostVisitor("walker", (5.5, 6.0), at(199.0), None),
        LostVisitor("sitter", (6.0, 6.0), at(20.0), "car-1"),  # 180 s ago: beyond any reach, but in car-1
    ]
    found = relinker().returning(new, at(200.0), "car-1", lost, [])
    assert found == VisitRelink("sitter", 1.0, from_car=True)
    assert relinker().returning(new, at(200.0), "car-2", lost, []) == VisitRelink("walker", 0.5, False)


def test_at_the_same_distance_a_visitor_outranks_a_staff_member_and_visitors_go_by_id() -> None:
    new = track(7, (10.0, 10.0), seen_s=10.0, appearance=ALICE)
    lost = [LostVisitor("b", (12.0, 10.0), at(9.0), None), LostVisitor("a", (10.0, 12.0), at(9.0), None)]
    staff = [Sighting((8.0, 10.0), at(9.0), ALICE_AGAIN)]
    found = relinker().returning(new, at(10.0), None, lost, staff)
    assert found == VisitRelink("a", 2.0, from_car=False)
    closer_staff = [Sighting((9.0, 10.0), at(9.0), ALICE_AGAIN)]
    assert relinker().returning(new, at(10.0), None, lost, closer_staff) == StaffRelink(0, 1.0)
    assert VisitRelink("z", 2.0, False).sort_key() < StaffRelink(0, 2.0).sort_key()
    assert StaffRelink(0, 1.0).sort_key() < VisitRelink("a", 2.0, False).sort_key()
    assert VisitRelink("z", 9.0, True).sort_key() < VisitRelink("a", 0.0, False).sort_key()


def test_a_lost_staff_member_comes_back_only_on_a_track_that_looks_like_them() -> None:
    staff = [Sighting((3.0, 3.0), at(0.0), BOB), Sighting((4.0, 3.0), at(0.0), ALICE)]
    alike = track(7, (3.0, 3.0), seen_s=5.0, appearance=ALICE_AGAIN)
    assert relinker().staff_returning(alike, at(5.0), staff) == StaffRelink(1, 1.0)
    stranger = track(8, (3.0, 3.0), seen_s=5.0, appearance=look(0.0, 0.0, 1.0))
    assert relinker().staff_returning(stranger, at(5.0), staff) is None
    unseen = track(9, (4.0, 3.0), seen_s=5.0)  # no appearance: position alone never passes a flag
    assert relinker(reid=False).staff_returning(unseen, at(5.0), staff) is None
    late = track(10, (4.0, 3.0), seen_s=40.0, appearance=ALICE)
    assert relinker().staff_returning(late, at(40.0), staff) is None  # born 40 s later > lost_after_s


def test_an_older_track_qualifies_only_when_asked_and_is_measured_where_it_is_now() -> None:
    older = track(3, (20.0, 20.0), seen_s=10.0, xy=(11.0, 10.0))  # born long before, now 1 m away
    started = track(4, (15.0, 10.0), seen_s=10.0)  # started since, 5 m away (reach 2.5 m + 1 m/s of gap)
    candidates = [candidate(older, born_s=-60.0), candidate(started, born_s=2.0)]
    assert nearest_new_track((10.0, 10.0), at(0.0), candidates) is None  # started 2 s later: reach 4.5 m
    assert nearest_new_track((10.0, 10.0), at(0.0), candidates[1:]) is None
    assert nearest_new_track((10.0, 10.0), at(0.0), candidates, older_too=True) == 3
    assert nearest_new_track((10.0, 10.0), at(0.0), [candidate(started, born_s=3.0)]) == 4  # reach 5.5 m


def test_a_door_successor_starts_at_most_five_seconds_after_the_last_sighting() -> None:
    last = Sighting((10.0, 18.0), at(0.0))
    soon = track(5, (10.0, 19.0), seen_s=4.0)
    assert door_successor(last, [candidate(soon, born_s=4.0)]) == 5
    assert door_successor(last, [candidate(soon, born_s=6.0)]) is None


def test_a_visit_heir_that_looks_like_somebody_else_is_passed_over() -> None:
    by_car = track(5, (5.0, 6.0), seen_s=2.0, appearance=BOB)
    further = track(6, (6.5, 6.0), seen_s=2.0, appearance=ALICE_AGAIN)
    candidates = [candidate(by_car, 1.0), candidate(further, 1.0)]
    assert relinker().heir((5.0, 6.0), at(0.0), candidates, unlike_of=None) == 5
    assert relinker().heir((5.0, 6.0), at(0.0), candidates, unlike_of=ALICE) == 6
    assert relinker(reid=False).heir((5.0, 6.0), at(0.0), candidates, unlike_of=ALICE) == 5


def test_a_staff_flag_passes_only_to_a_look_alike_started_since() -> None:
    last = Sighting((3.0, 3.0), at(0.0), ALICE)
    alike = track(5, (4.0, 3.0), seen_s=2.0, appearance=ALICE_AGAIN)
    stranger = track(6, (3.5, 3.0), seen_s=2.0, appearance=BOB)
    assert relinker().staff_heir(last, [candidate(stranger, 1.0), candidate(alike, 1.0)]) == 5
    assert relinker().staff_heir(last, [candidate(stranger, 1.0)]) is None
    assert relinker().staff_heir(Sighting((3.0, 3.0), at(0.0)), [candidate(alike, 1.0)]) is None


def test_a_track_starting_beside_a_car_may_be_getting_out_of_the_nearest_one() -> None:
    square = Polygon([(0, 0), (1, 0), (1, 1), (0, 1)])
    cars = [("car-a", [square]), ("car-b", [Polygon([(4, 0), (5, 0), (5, 1), (4, 1)])])]
    assert car_left_from((2.0, 0.5), cars) == "car-a"
    assert car_left_from((3.5, 0.5), cars) == "car-b"
    assert car_left_from((1.0 + CAR_RELINK_M + 0.1, 5.0), cars) is None
