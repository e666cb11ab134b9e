"""Door-line counting on synthetic tracks: direction, hysteresis, segment limits, step in and back out."""

from __future__ import annotations

from showroom_builders import END, Scene, line, stay

from edge.analytics.door import DoorCounter, outside_doors, segments_intersect
from edge.config import DoorConfig

OUT = (10.0, 21.5)
IN = (10.0, 15.0)


def door(hysteresis_m: float = 0.4) -> DoorCounter:
    return DoorCounter(
        DoorConfig(id="main", line_m=((8, 20), (12, 20)), inside_point_m=(10, 10), hysteresis_m=hysteresis_m)
    )


def test_crossing_inward_then_outward_counts_once_each() -> None:
    counter = door()
    path = line(OUT, IN, 4) + line(IN, OUT, 4) + [OUT]
    directions = [counter.observe(1, p) for p in path]
    assert [d for d in directions if d] == ["in", "out"]
    assert counter.counts == {"in": 1, "out": 1}


def test_jitter_on_the_line_never_double_counts() -> None:
    counter = door(hysteresis_m=0.4)
    # Approach, then 10 s standing on the line with +-0.3 m jitter (inside the 0.4 m band), then walk in.
    jitter = [(10.0, 20.0 + (0.3 if k % 2 else -0.3)) for k in range(50)]
    path = line(OUT, (10, 20.3), 2) + jitter + line((10, 19.7), IN, 3)
    directions = [counter.observe(1, p) for p in path]
    assert [d for d in directions if d] == ["in"]


def test_jitter_across_the_hysteresis_band_after_entering_counts_one_entry() -> None:
    counter = door(hysteresis_m=0.4)
    path = (
        line(OUT, (10, 19.5), 2)
        + [(10.0, 19.5 + 0.35 * (k % 2)) for k in range(30)]
        + line((10, 19.5), IN, 2)
    )
    assert [d for d in (counter.observe(1, p) for p in path) if d] == ["in"]


def test_walking_round_the_end_of_the_line_is_not_a_crossing() -> None:
    counter = door()
    # From outside at x = 14 (beyond the line's end at x = 12), inward: changes side but never crosses.
    path = line((14, 21.5), (14, 15), 4)
    assert [d for d in (counter.observe(1, p) for p in path) if d] == []
    assert counter.counts == {"in": 0, "out": 0}


def test_crossing_made_while_tentative_counts_from_the_birth_point() -> None:
    counter = door()
    # First seen by analytics already inside, but the tracker saw it first outside.
    assert counter.observe(7, (10, 18.5), first_xy=(10, 21.0)) == "in"


def test_segment_intersection() -> None:
    assert segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))
    assert not segments_intersect((0, 0), (1, 1), (2, 0), (3, -1))
    assert segments_intersect((0, 0), (2, 0), (1, 0), (1, 5))  # touching counts


def test_two_people_side_by_side_are_two_visitors() -> None:
    scene = Scene()
    a = line((9.5, 21.5), (9.5, 15), 4) + stay((9.5, 15), 3)
    b = line((10.3, 21.5), (10.3, 15), 4) + stay((10.3, 15), 3)
    scene.play({1: a, 2: b})
    started = scene.of_type("visit.started")
    assert len(started) == 2
    assert len({e.visitor_id for e in started}) == 2
    assert scene.analytics.occupancy == 2


def test_stepping_in_and_straight_back_out_is_not_a_visitor() -> None:
    scene = Scene()
    path = line(OUT, (10, 19.0), 1.5) + stay((10, 19.0), 0.6) + line((10, 19.0), OUT, 1.5) + stay(OUT, 3)
    scene.play({1: path})
    assert scene.analytics.crossings[("main", "in")] == 1
    assert scene.analytics.crossings[("main", "out")] == 1
    assert scene.of_type("visit.started") == []
    assert scene.of_type("visit.ended") == []
    assert scene.occupancy[-1] == 0


def test_visit_starts_at_the_crossing_and_ends_at_the_outward_crossing() -> None:
    scene = Scene()
    path = line(OUT, IN, 4) + stay(IN, 20) + line(IN, OUT, 4) + stay(OUT, 1) + [END]
    scene.play({1: path})
    (started,) = scene.of_type("visit.started")
    (ended,) = scene.of_type("visit.ended")
    assert started.visitor_id == ended.visitor_id
    assert ended.end_reason == "door" and ended.door_id == "main"
    # Committed 0.4 m past the line: inward at ~1.2 s into the walk, outward ~27.4 s after the start.
    assert 25.5 <= ended.duration_s <= 27.0
    assert ended.started_at == started.ts
    assert scene.occupancy[-1] == 0


def test_a_crossing_hidden_by_a_track_break_counts_once_on_the_new_track() -> None:
    counter = door(hysteresis_m=0.4)
    # Track 1 walks in from outside and is lost 0.6 m before the line (hidden behind someone there).
    for p in line(OUT, (10, 20.6), 2):
        assert counter.observe(1, p) is None
    # Track 2 picks the person up 0.6 m past the line (already inside when first seen).
    assert counter.observe(2, (10, 19.4), first_xy=(10, 19.4)) is None
    counter.hand_over(1, 2)
    counter.forget(1)
    directions = [counter.observe(2, p) for p in line((10, 19.4), IN, 2)]
    assert [d for d in directions if d] == ["in"]
    assert counter.counts == {"in": 1, "out": 0}
    # Handing over again (or from a track on the same side) changes nothing.
    counter.hand_over(2, 2)
    assert [counter.observe(2, p) for p in stay(IN, 1)].count("in") == 0


def test_a_hand_over_never_counts_twice_or_round_the_end_of_the_line() -> None:
    counter = door(hysteresis_m=0.4)
    for p in line(OUT, (10, 20.6), 2):
        counter.observe(1, p)
    # The new track crossed by itself (born outside, walked in): its own crossing is the one counted.
    for p in line((10, 21.0), (10, 18.0), 1):
        counter.observe(2, p, first_xy=(10, 21.0))
    assert counter.counts["in"] == 1
    counter.hand_over(1, 2)
    assert [counter.observe(2, p) for p in line((10, 18.0), IN, 1)].count("in") == 0
    assert counter.counts["in"] == 1
    # Lost outside beyond the end of the line, found inside there too: the path misses the segment.
    beside = door(hysteresis_m=0.4)
    for p in line((6.0, 22.0), (6.0, 20.6), 1):
        beside.observe(3, p)
    beside.observe(4, (6.0, 19.0), first_xy=(6.0, 19.0))
    beside.hand_over(3, 4)
    assert [beside.observe(4, p) for p in line((6.0, 19.0), (6.0, 15.0), 1)].count("in") == 0


def test_beyond_a_door_line_is_off_the_floor_only_along_its_span() -> None:
    doors = [door()]
    assert outside_doors(doors, (10.0, 20.5))
    assert outside_doors(doors, (12.9, 25.0))  # within 1 m past the end of the line
    assert not outside_doors(doors, (13.5, 25.0))  # beyond that: not this door's outside
    assert not outside_doors(doors, (10.0, 19.5))
    assert not outside_doors([], (10.0, 20.5))
