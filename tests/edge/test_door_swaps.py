"""Door crossings that survive the tracker: two people passing in a doorway, groups, hesitation on the line.

The showroom of `showroom_builders`: a door line along y = 20 from x = 8 to 12 (inside is y < 20), 0.4 m
hysteresis, tracks at 5 frames a second.
"""

from __future__ import annotations

import math
from datetime import timedelta

from showroom_builders import T0, Scene, line, looks, make_config, stay

from edge.tracking.base import Sighting, TrackState
from edge.tracking.doorway import Trail
from edge.tracking.relink import Relinker
from vision_models.arrays import XY

OUT = (10.0, 21.5)
IN = (10.0, 15.0)
MEET_A = (10.2, 19.0)  # where the one coming in meets the one walking out (0.4 m apart, 1 m inside)
MEET_B = (9.8, 19.0)


def _visitor_inside_then_leaving(leave_after_s: float) -> list[XY | str | None]:
    """Comes in, stands inside (a confirmed visit), then walks towards the door to leave."""
    return [*line(OUT, IN, 5), *stay(IN, leave_after_s), *line(IN, MEET_B, 3.5)]


def _swap_scene() -> tuple[Scene, list[XY | str | None], list[XY | str | None]]:
    """Track 1 follows B (on a visit) towards the door; track 2 follows A coming in. They meet 1 m inside
    and the tracker swaps them: track 1 goes back in with A, track 2 walks out with B."""
    leaving = _visitor_inside_then_leaving(12)
    lead = len(leaving) - round(2.2 * 5)  # A comes in from outside and reaches the meeting point with B
    track_b = [*leaving, *line(MEET_B, (10.2, 15.0), 4), *stay((10.2, 15.0), 6)]
    track_a = [None] * lead + [
        *line((10.2, 21.5), MEET_A, 2.2),
        *line(MEET_A, (9.8, 22.0), 2.5),
        *stay((9.8, 22), 2),
    ]
    return Scene(), track_b, track_a


def test_a_swap_in_the_doorway_keeps_both_visits_each_with_its_own_person() -> None:
    scene, track_b, track_a = _swap_scene()
    scene.play({1: track_b, 2: track_a})
    assert scene.analytics.crossings[("main", "in")] == 2
    assert scene.analytics.crossings[("main", "out")] == 1
    started = scene.of_type("visit.started")
    assert len(started) == 2, "the one who came in is a visitor, not a step back"
    first, second = started
    # B walked out (on track 2 after the swap): B's visit ended at the door; A's goes on with track 1.
    (ended,) = scene.of_type("visit.ended")
    assert ended.visitor_id == first.visitor_id and ended.end_reason == "door"
    assert scene.analytics.visitor_of(1) == second.visitor_id
    assert scene.analytics.visitor_of(2) is None
    assert scene.analytics.occupancy == 1


def test_stepping_straight_back_out_while_someone_walks_out_past_is_no_visit() -> None:
    # A steps in 1 m and back out; B walks out past A the whole time (no turning round): no swap.
    scene = Scene()
    leaving = [*line(OUT, IN, 5), *stay(IN, 12), *line(IN, (9.6, 22.0), 5.5)]
    lead = len(leaving) - round(4.0 * 5)
    a = [None] * lead + [*line((10.3, 21.5), (10.3, 19.0), 1.6), *stay((10.3, 19.0), 0.4)]
    a += [*line((10.3, 19.0), (10.3, 22.0), 1.6), *stay((10.3, 22.0), 2)]
    scene.play({1: leaving, 2: a})
    assert scene.analytics.crossings[("main", "in")] == 2
    assert scene.analytics.crossings[("main", "out")] == 2
    (started,) = scene.of_type("visit.started")
    (ended,) = scene.of_type("visit.ended")
    assert ended.visitor_id == started.visitor_id and ended.end_reason == "door"
    assert scene.analytics.occupancy == 0


def test_stepping_straight_back_out_alone_is_no_visit() -> None:
    scene = Scene()
    path = [*line(OUT, (10, 19.0), 1.5), *stay((10, 19.0), 0.6), *line((10, 19.0), OUT, 1.5), *stay(OUT, 3)]
    scene.play({1: path})
    assert scene.of_type("visit.started") == []
    assert scene.analytics.occupancy == 0


def test_with_re_identification_a_track_that_still_looks_like_who_came_in_stepped_back_out() -> None:
    # The same turning round as a swap, but the track that walked back out looks like the person who came
    # in (and the other like somebody else): they stepped back out, and the one inside turned round.
    reid = make_config(tracker={"reid": {}})
    scene, track_b, track_a = _swap_scene()
    scene = Scene(config=reid)
    scene.play({1: track_b, 2: track_a}, appearance={1: looks(1), 2: looks(2)})
    (started,) = scene.of_type("visit.started")
    assert scene.analytics.visitor_of(1) == started.visitor_id
    # Looks agreeing with the swap (each track took the other's look): both visits kept.
    swapped = Scene(config=reid)
    swapped.play({1: track_b, 2: track_a}, appearance={1: looks(1), 2: looks(3)})
    assert len(swapped.of_type("visit.started")) == 1 + 0 * len(track_a)


def test_a_group_of_three_entering_together_makes_three_visits() -> None:
    scene = Scene()
    tracks = {
        k: [*line((x, 21.5), (x, 16.0), 4), *stay((x, 16.0), 5)] for k, x in ((1, 9.4), (2, 10.0), (3, 10.6))
    }
    scene.play(dict(tracks))
    started = scene.of_type("visit.started")
    assert len({e.visitor_id for e in started}) == 3
    assert scene.analytics.occupancy == 3


def test_a_group_of_three_where_one_turns_back_as_another_follows_in_makes_two_visits() -> None:
    # Two walk in; the third steps in, turns round and leaves while the first two walk on: a step back.
    scene = Scene()
    a = [*line((9.4, 21.5), (9.4, 16.0), 4), *stay((9.4, 16.0), 5)]
    b = [*line((10.6, 21.5), (10.6, 16.0), 4), *stay((10.6, 16.0), 5)]
    c = [
        *line((10.0, 22.0), (10.0, 19.0), 2.5),
        *line((10.0, 19.0), (10.0, 22.5), 2.5),
        *stay((10.0, 22.5), 4),
    ]
    scene.play({1: a, 2: b, 3: c})
    assert len(scene.of_type("visit.started")) == 2
    assert scene.analytics.occupancy == 2


def test_hesitating_on_the_line_makes_one_visit() -> None:
    # Walks up, stands on the line 4 s stepping to and fro across it within the 0.4 m band, then walks in.
    scene = Scene()
    to_and_fro = [(10.0, 20.0 + (0.3 if k % 3 else -0.3)) for k in range(20)]
    path = [*line(OUT, (10.0, 20.3), 1), *to_and_fro, *line((10.0, 19.7), IN, 3), *stay(IN, 4)]
    scene.play({1: path})
    assert scene.analytics.crossings[("main", "in")] == 1
    assert scene.analytics.crossings[("main", "out")] == 0
    assert len(scene.of_type("visit.started")) == 1
    assert scene.analytics.occupancy == 1


def _trail(track_id: int, path: list[XY], look: int) -> Trail:
    """A track's trail at 5 steps a second, ending now, with appearance `looks(look)`."""
    t = [T0 + timedelta(seconds=k / 5) for k in range(len(path))]
    sightings = tuple(Sighting(p, ts, looks(look)) for p, ts in zip(path, t, strict=True))
    state = TrackState(track_id, path[-1], (0.0, 0.0), True, path[0], t[-1], appearance=looks(look))
    return Trail(state, sightings)


def test_with_re_identification_a_swap_needs_the_other_track_to_look_like_who_came_in() -> None:
    relinker = Relinker(same_person_distance=0.15, lost_after_s=60.0)
    came_in = [*line((10.2, 21.5), MEET_A, 2.2), *line(MEET_A, (10.0, 20.6), 1.2)]
    turned = [*line((9.8, 15.5), MEET_B, 2.2), *line(MEET_B, (9.9, 17.8), 1.2)]
    came_in_at = T0 + timedelta(seconds=1.7)
    inward = (0.0, -1.0)
    # The track that walked out now looks like B, the one that turned round like A (who came in): a swap.
    out_b, in_a = _trail(2, came_in, look=2), _trail(1, turned, look=1)
    assert relinker.door_swap(out_b, came_in_at, looks(1), inward, [in_a]) == 1
    # The one that turned round looks like somebody else: not A.
    assert relinker.door_swap(out_b, came_in_at, looks(1), inward, [_trail(1, turned, look=3)]) is None
    # The track that walked out still looks like A: A stepped back out.
    assert relinker.door_swap(_trail(2, came_in, look=1), came_in_at, looks(1), inward, [in_a]) is None
    # Without re-identification, the trajectories alone say swap.
    assert Relinker(math.inf, 60.0).door_swap(out_b, came_in_at, None, inward, [in_a]) == 1
