"""The floor tracker on synthetic floor detections: confirmation, two-stage association, re-linking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from shapely.geometry import box
from showroom_builders import T0

from edge.config import ReidConfig, TrackerConfig
from edge.tracking import FloorDetections, FloorKalmanTracker, TrackingError, make_tracker
from edge.tracking.association import greedy_match

DT = 0.2


def dets(
    points: list[tuple[float, float]], scores: list[float] | None = None, sigma_m: float = 0.1
) -> FloorDetections:
    n = len(points)
    return FloorDetections(
        np.array(points, dtype=np.float64).reshape(n, 2),
        np.tile(np.eye(2) * sigma_m**2, (n, 1, 1)),
        np.array(scores if scores is not None else [0.9] * n, dtype=np.float64),
        tuple({"cam": i} for i in range(n)),
    )


def run(tracker: FloorKalmanTracker, frames: list[FloorDetections]) -> list[dict[int, tuple[float, float]]]:
    """Per frame, the observed confirmed tracks' positions by id."""
    out = []
    for k, frame in enumerate(frames):
        step = tracker.update(T0 + timedelta(seconds=k * DT), frame)
        out.append({t.track_id: t.xy_m for t in step.tracks if t.observed})
    return out


def test_a_walking_person_keeps_one_id_and_is_confirmed_after_three_hits() -> None:
    rng = np.random.default_rng(1)
    frames = [dets([(2 + 1.2 * k * DT + rng.normal(0, 0.08), 5 + rng.normal(0, 0.08))]) for k in range(50)]
    seen = run(FloorKalmanTracker(), frames)
    assert seen[0] == {} and seen[1] == {}  # tentative: analytics never see it
    assert all(len(s) == 1 for s in seen[2:])
    assert {tid for s in seen for tid in s} == {1}


def test_a_single_false_detection_never_becomes_a_track() -> None:
    tracker = FloorKalmanTracker()
    frames = [dets([(5, 5)])] + [dets([]) for _ in range(10)]
    assert all(s == {} for s in run(tracker, frames))
    assert tracker.tracks_alive == 0


def test_hidden_behind_a_car_for_three_seconds_keeps_the_id() -> None:
    frames = [dets([(2 + 1.0 * k * DT, 5)]) for k in range(20)]
    frames += [dets([]) for _ in range(15)]  # 3 s behind a car
    frames += [dets([(2 + 1.0 * k * DT, 5)]) for k in range(35, 60)]
    seen = run(FloorKalmanTracker(), frames)
    ids = {tid for s in seen for tid in s}
    assert ids == {1}
    assert seen[36] != {}  # re-linked at once, no new confirmation needed


def test_a_person_who_stops_behind_a_car_is_relinked() -> None:
    frames = [dets([(2 + 1.0 * k * DT, 5)]) for k in range(20)]  # walks to x = 5.8, then stops (hidden)
    frames += [dets([]) for _ in range(12)]
    frames += [dets([(6.0, 5.1)]) for _ in range(10)]
    seen = run(FloorKalmanTracker(), frames)
    assert {tid for s in seen for tid in s} == {1}


def test_lost_longer_than_max_lost_ends_the_track() -> None:
    tracker = FloorKalmanTracker(TrackerConfig(max_lost_s=2.0))
    for k in range(10):
        tracker.update(T0 + timedelta(seconds=k * DT), dets([(5, 5)]))
    ended: list[int] = []
    for k in range(10, 25):
        ended += tracker.update(T0 + timedelta(seconds=k * DT), dets([])).ended
    assert ended == [1]


def test_a_lost_track_is_not_relinked_beyond_walking_reach() -> None:
    # A visitor walks into a car and vanishes; 3.6 s later someone comes in 9 m further on. Within the
    # lost track's widened Kalman gate, but nobody walks 9 m in 3.6 s in a showroom: a new person.
    frames = [dets([(2 + 1.2 * k * DT, 5)]) for k in range(20)]
    last_x = 2 + 1.2 * 19 * DT
    frames += [dets([]) for _ in range(17)]
    frames += [dets([(last_x + 9.0 + 0.2 * k, 5)]) for k in range(10)]
    seen = run(FloorKalmanTracker(), frames)
    assert set(seen[19]) == {1}
    assert all(1 not in s for s in seen[37:])
    assert {tid for s in seen[40:] for tid in s} == {2}


def test_a_young_track_lost_does_not_wait_to_take_over_someone_else() -> None:
    # Three false detections in a row confirm a track; 2 s later a real person shows up 3 m away.
    frames = [dets([(5, 5)]) for _ in range(3)]
    frames += [dets([]) for _ in range(10)]
    frames += [dets([(8, 5)]) for _ in range(10)]
    tracker = FloorKalmanTracker()
    ended: list[int] = []
    seen = []
    for k, frame in enumerate(frames):
        step = tracker.update(T0 + timedelta(seconds=k * DT), frame)
        ended += step.ended
        seen.append({t.track_id: t.xy_m for t in step.tracks if t.observed})
    assert set(seen[2]) == {1}
    assert ended == [1]  # ended within about a second, not after max_lost_s
    assert {tid for s in seen[13:] for tid in s} == {2}


def test_a_long_tracked_person_hidden_for_four_seconds_keeps_the_id() -> None:
    # Established tracks still coast for max_lost_s (4 s) and re-link within walking reach.
    frames = [dets([(2 + 1.0 * k * DT, 5)]) for k in range(20)]
    frames += [dets([]) for _ in range(19)]  # 3.8 s hidden, walking on at 1 m/s
    frames += [dets([(2 + 1.0 * k * DT, 5)]) for k in range(39, 50)]
    seen = run(FloorKalmanTracker(), frames)
    assert {tid for s in seen for tid in s} == {1}


def test_a_track_lost_in_a_car_is_not_relinked_to_someone_outside_it() -> None:
    car = box(4.0, 4.0, 8.0, 6.0)  # a display car's interior
    # Walks in through the car door and sits down (hidden); 2 s later a companion steps up 1.8 m away.
    frames = [dets([(5.0, 2.0 + 1.0 * k * DT)]) for k in range(16)]  # up to (5.0, 5.0), on the seat
    frames += [dets([]) for _ in range(10)]
    frames += [dets([(6.6, 3.2 + 0.05 * k)]) for k in range(10)]
    seen = run(FloorKalmanTracker(hideouts_m=car), frames)
    assert set(seen[15]) == {1}
    assert all(1 not in s for s in seen[26:])
    # Without the car, the companion is within a lost track's reach and would take it over.
    seen = run(FloorKalmanTracker(), frames)
    assert any(1 in s for s in seen[26:])


def test_a_person_briefly_missed_in_a_car_keeps_the_id() -> None:
    car = box(4.0, 4.0, 8.0, 6.0)
    frames = [dets([(5.0, 2.0 + 1.0 * k * DT)]) for k in range(16)]
    frames += [dets([]) for _ in range(3)]
    frames += [dets([(5.2, 5.1)]) for _ in range(5)]
    seen = run(FloorKalmanTracker(hideouts_m=car), frames)
    assert {tid for s in seen for tid in s} == {1}


def test_two_people_crossing_paths_keep_their_ids() -> None:
    frames = []
    for k in range(40):
        x = 2 + 0.2 * k
        frames.append(dets([(x, 5 + 0.05 * k), (x, 7 - 0.05 * k)]))  # pass within 0.0-0.2 m of each other
    seen = run(FloorKalmanTracker(), frames)
    assert all(len(s) == 2 for s in seen[2:])
    start, end = seen[3], seen[-1]
    low_start = min(start, key=lambda t: start[t][1])
    low_end = max(end, key=lambda t: end[t][1])  # the one that started low ends high
    assert low_start == low_end


def test_low_score_detections_keep_a_track_but_never_start_one() -> None:
    tracker = FloorKalmanTracker()
    frames = [dets([(2 + 0.2 * k, 5)]) for k in range(5)]
    frames += [dets([(3 + 0.2 * k, 5)], scores=[0.2]) for k in range(25)]  # half hidden: low scores
    frames += [dets([(12, 12)], scores=[0.2]) for _ in range(5)]
    seen = run(tracker, frames)
    assert all(set(s) == {1} for s in seen[2:30])
    assert all(s == {} for s in seen[31:])  # the low-score stranger at (12, 12) is never tracked


def test_time_must_move_forward() -> None:
    tracker = FloorKalmanTracker()
    tracker.update(T0, dets([]))
    with pytest.raises(TrackingError, match="forward"):
        tracker.update(T0, dets([]))


def test_floor_detections_reject_nan() -> None:
    with pytest.raises(TrackingError, match="NaN"):
        dets([(float("nan"), 1.0)])


def test_floor_detections_reject_scores_outside_0_1() -> None:
    with pytest.raises(TrackingError, match=r"scores must lie in \[0, 1\]"):
        dets([(1.0, 1.0)], scores=[1.5])


def test_floor_detections_are_read_only() -> None:
    xy = np.array([[1.0, 2.0], [3.0, 4.0]])
    floor = FloorDetections(
        xy, np.tile(np.eye(2) * 0.01, (2, 1, 1)), np.array([0.9, 0.8]), ({"a": 0}, {"a": 1})
    )
    for array in (floor.xy_m, floor.cov_m2, floor.score):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = np.nan
    xy[0, 0] = np.nan  # the builder reuses its buffer: the validated detections keep their values
    assert floor.xy_m.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert xy.flags.writeable  # and the builder's own array is left writable
    assert replace(floor, embed=None).xy_m is floor.xy_m  # an unchangeable array is not copied again


def test_greedy_match_takes_cheapest_pairs_and_skips_gated() -> None:
    cost = np.array([[1.0, 0.5, np.inf], [0.4, 3.0, np.inf], [np.inf, np.inf, np.inf]])
    assert sorted(greedy_match(cost)) == [(0, 1), (1, 0)]
    assert greedy_match(np.zeros((0, 3))) == []


def test_make_tracker_builds_the_configured_tracker() -> None:
    assert isinstance(make_tracker(TrackerConfig()), FloorKalmanTracker)


# -- appearance (re-identification) --------------------------------------------------------------------

REID = ReidConfig(max_per_step=4)


def looks(seed: int) -> np.ndarray:
    """A person's appearance: a fixed unit vector (256,)."""
    v = np.random.default_rng(seed).normal(size=256)
    return v / np.linalg.norm(v)


def dets_with_looks(
    points: list[tuple[float, float]], people: list[int], calls: list[list[int]] | None = None
) -> FloorDetections:
    """Floor detections whose embeddings are the listed people's appearances; `calls` records requests."""
    base = dets(points)

    def embed(indices: Sequence[int]) -> np.ndarray:
        if calls is not None:
            calls.append(list(indices))
        return np.stack([looks(people[j]) for j in indices]).reshape(len(indices), 256)

    return replace(base, embed=embed)


def test_with_appearance_a_hidden_person_is_not_relinked_to_someone_else_at_the_spot() -> None:
    frames = [dets_with_looks([(2 + 1.0 * k * DT, 5)], [1]) for k in range(20)]  # A walks to x = 5.8
    frames += [dets_with_looks([], []) for _ in range(5)]  # A hidden for a second
    frames += [dets_with_looks([(6.2, 5.0)], [2]) for _ in range(10)]  # B where A would be
    plain = [dets([(2 + 1.0 * k * DT, 5)]) for k in range(20)] + [dets([]) for _ in range(5)]
    plain += [dets([(6.2, 5.0)]) for _ in range(10)]
    assert {tid for s in run(FloorKalmanTracker(), plain) for tid in s} == {1}  # motion alone: taken over
    seen = run(FloorKalmanTracker(TrackerConfig(reid=REID)), frames)
    assert {tid for s in seen[:20] for tid in s} == {1}
    assert {tid for s in seen[25:] for tid in s} == {2}  # B is a track of their own


def test_with_appearance_a_hidden_person_who_comes_back_keeps_the_id() -> None:
    frames = [dets_with_looks([(2 + 1.0 * k * DT, 5)], [1]) for k in range(20)]
    frames += [dets_with_looks([], []) for _ in range(5)]
    frames += [dets_with_looks([(6.2, 5.0)], [1]) for _ in range(10)]
    seen = run(FloorKalmanTracker(TrackerConfig(reid=REID)), frames)
    assert {tid for s in seen for tid in s} == {1}


def test_appearance_is_asked_for_within_the_budget_and_tracks_carry_it() -> None:
    calls: list[list[int]] = []
    people = list(range(10))
    points = [(1.0 + 2.0 * i, 5.0) for i in range(10)]
    tracker = FloorKalmanTracker(TrackerConfig(reid=REID))
    step = None
    for k in range(15):
        step = tracker.update(T0 + timedelta(seconds=k * DT), dets_with_looks(points, people, calls))
    assert calls and all(0 < len(c) <= REID.max_per_step for c in calls)
    assert tracker.embedded == sum(len(c) for c in calls)
    assert step is not None and len(step.tracks) == 10
    for track in step.tracks:
        assert track.appearance is not None
        person = min(range(10), key=lambda p: abs(points[p][0] - track.xy_m[0]))
        assert float(track.appearance @ looks(person)) > 0.99


def test_without_an_embedder_or_reid_config_no_appearance_is_asked_for() -> None:
    calls: list[list[int]] = []
    tracker = FloorKalmanTracker()
    for k in range(10):
        step = tracker.update(T0 + timedelta(seconds=k * DT), dets_with_looks([(5, 5)], [1], calls))
    assert calls == [] and tracker.embedded == 0
    assert all(t.appearance is None for t in step.tracks)
