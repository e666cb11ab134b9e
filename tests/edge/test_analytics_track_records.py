"""One record per track: made at first sight, forgotten when the track ends or the node flushes."""

from __future__ import annotations

from datetime import timedelta

from showroom_builders import END, T0, Scene, line, stay

from edge.analytics.track_records import TrackRecords
from edge.tracking.base import TrackState

OUT = (10.0, 21.5)
DOOR_IN = (10.0, 18.0)


def state(track_id: int, xy: tuple[float, float], observed: bool = True) -> TrackState:
    return TrackState(track_id, xy, (0.0, 0.0), observed, xy, T0)


def test_a_record_is_made_once_and_ending_it_returns_and_forgets_it() -> None:
    records = TrackRecords()
    assert records.first_sight(1, T0) is True
    assert records.first_sight(1, T0 + timedelta(seconds=1)) is False
    records.note_sightings([state(1, (2.0, 3.0)), state(2, (9.0, 9.0), observed=False)])
    records[1].staff = True
    ended = records.end(1)
    assert ended is not None and ended.first_seen_utc == T0 and ended.staff
    assert ended.last is not None and ended.last.xy == (2.0, 3.0)
    assert records.end(1) is None and not records.is_staff(1) and records.visitor_of(1) is None


def test_candidates_are_the_alive_tracks_with_a_record_in_the_given_order() -> None:
    records = TrackRecords()
    for track_id in (3, 1, 2):
        records.first_sight(track_id, T0)
    records[2].visitor_id = "v"
    alive = [state(1, (0.0, 0.0)), state(9, (0.0, 0.0)), state(2, (0.0, 0.0)), state(3, (0.0, 0.0))]
    free = records.candidates(alive, lambda _, r: r.visitor_id is None)
    assert [c.track.track_id for c in free] == [1, 3]
    assert records.counts_as_staff(1) is False
    records[1].staff = True
    records[2].staff = True
    assert records.counts_as_staff(1) is True and records.counts_as_staff(2) is False  # 2 is on a visit


def test_an_ended_staff_track_and_a_flushed_visitor_track_are_forgotten() -> None:
    scene = Scene()
    staff_path = [*line((15, 10), (17.5, 2.5), 4), *stay((17.5, 2.5), 2)]  # behind the desk
    visitor_path = [*line(OUT, DOOR_IN, 3), *line(DOOR_IN, (12, 12), 5), *stay((12, 12), 5)]
    scene.play({1: staff_path, 2: visitor_path})
    assert scene.analytics.is_staff(1)
    scene.play({1: [END], 2: stay((12, 12), 1)})
    assert not scene.analytics.is_staff(1)
    assert scene.analytics.visitor_of(2) is not None
    scene.flush()
    assert scene.analytics.visitor_of(2) is None and scene.analytics.visits == {}
