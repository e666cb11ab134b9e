"""People behind a display car: an oblique camera boxes them down to the car's roof line.

The boxes come from the simulator's camera over the packaged simulated store (`examples/sim-store.yaml`),
with every fault off but the cars' occlusion (every person behind a car is cut, none missed). The
pipeline must stand such a person where they are, not where the cut box's bottom edge projects.
"""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path

import numpy as np
from showroom_builders import FPS, T0, XY, line, stamper, stay

from edge.config import load_config
from edge.events import Envelope, ZoneDwell
from edge.pipeline import EdgePipeline
from edge.sim.camera import SimCamera
from edge.sim.scenarios import NoiseModel
from edge.sim.world import World
from vision_models.detections import Detections

CONFIG = load_config(Path(__file__).parents[2] / "examples" / "sim-store.yaml")
# cam-entrance sees the main door; cam-front is on the front wall, looking towards the back (smaller y is
# farther away).
ENTRANCE, FRONT = 2, 3
CUT_ONLY = NoiseModel(p_miss=0, fp_per_frame=0, jitter_frac=0.01, p_occluded_miss=0.0, car_height_m=1.5)
BEHIND_CAR_05 = (16.6, 10.0)  # car-05's footprint is x 12.5-17.3, y 11.2-13.1: this is behind it
IN_THE_OPEN = (16.6, 16.0)


def sim_camera(index: int = FRONT, seed: int = 0) -> SimCamera:
    return SimCamera(CONFIG.cameras[index], World(CONFIG), CUT_ONLY, np.random.default_rng(seed))


def front_camera(seed: int = 0) -> SimCamera:
    return sim_camera(FRONT, seed)


def run(
    pipeline: EdgePipeline,
    cam: SimCamera,
    people: list[list[XY]],
    heights: list[float],
    start_s: float = 0.0,
    events: list[Envelope] | None = None,
    also: SimCamera | None = None,
) -> list[tuple[list[XY], list[tuple[float, float]], Detections]]:
    """Walk `people` (one position per frame each) past the camera (and `also` that one); per frame the
    true positions, the observed tracks' floor positions and `cam`'s detections. Events go to `events`."""
    frames = []
    for k in range(max(len(p) for p in people)):
        here = [p[k] for p in people if k < len(p)]
        height = [h for p, h in zip(people, heights, strict=True) if k < len(p)]
        by_camera = {
            c.id: c.detect(np.array(here), np.zeros(len(here), bool), np.array(height))
            for c in (cam, also)
            if c is not None
        }
        det = by_camera[cam.id]
        produced = pipeline.process(T0 + timedelta(seconds=start_s + k / FPS), by_camera)
        if events is not None:
            events += produced
        frames.append((here, [t.xy_m for t in pipeline.tracks if t.observed], det))
    return frames


def pause(pipeline: EdgePipeline, cam: SimCamera, start_s: float, seconds: float) -> None:
    """Frames in which the camera sees nobody (the tracker lets go of whoever has left)."""
    for k in range(round(seconds * FPS)):
        pipeline.process(
            T0 + timedelta(seconds=start_s + k / FPS), {cam.id: Detections.empty(cam.resolution_wh)}
        )


def nearest(p: XY, points: list[tuple[float, float]]) -> float:
    return min((math.dist(p, q) for q in points), default=math.inf)


def test_a_person_browsing_behind_a_car_stays_where_they_are() -> None:
    cam = front_camera()
    pipeline = EdgePipeline(CONFIG, stamper())
    walk = line(IN_THE_OPEN, BEHIND_CAR_05, 6) + stay(BEHIND_CAR_05, 20)
    frames = run(pipeline, cam, [walk], [1.75])

    behind = [k for k, (here, _, _) in enumerate(frames) if here[0] == BEHIND_CAR_05]
    full_height = cam.boxes(np.array([BEHIND_CAR_05]), np.array([1.75]))[0]
    for k in behind:  # the camera really cuts these boxes at the roof line
        det = frames[k][2]
        assert len(det) == 1 and det.xyxy[0, 3] < full_height[3] - 0.3 * (full_height[3] - full_height[1])
    # Where the cut box's bottom edge alone would stand the person: well beyond them.
    x1, _, x2, y2 = frames[behind[-1]][2].xyxy[0]
    raw, _ = pipeline.projections[cam.id].to_floor([((x1 + x2) / 2, y2)])
    assert math.dist(raw[0], BEHIND_CAR_05) > 1.0

    errors = [nearest(BEHIND_CAR_05, frames[k][1]) for k in behind[5:]]
    assert max(errors) < 0.3, f"tracked {max(errors):.2f} m from where the person stands"
    assert pipeline.stats.cut_boxes >= len(behind) - 2
    # The overlay box stands on the person's feet, not on the roof line.
    [(_, box, _)] = pipeline.observed_tracks(cam.id)
    assert abs(box[3] - full_height[3]) < 0.05 * (full_height[3] - full_height[1])


def test_the_browse_dwell_behind_a_car_is_one_stay() -> None:
    cam = front_camera()
    pipeline = EdgePipeline(CONFIG, stamper())
    outside = (16.6, 21.0)
    walk = line(outside, IN_THE_OPEN, 4) + line(IN_THE_OPEN, BEHIND_CAR_05, 6) + stay(BEHIND_CAR_05, 30)
    walk += line(BEHIND_CAR_05, IN_THE_OPEN, 6) + line(IN_THE_OPEN, outside, 4) + stay(outside, 2)
    events: list[Envelope] = []
    run(pipeline, cam, [walk], [1.75], events=events, also=sim_camera(ENTRANCE))
    events += pipeline.flush(T0 + timedelta(seconds=len(walk) / FPS + 1))
    kinds = [e.type for e in events]  # type: ignore[attr-defined]
    assert kinds.count("visit.started") == 1 and kinds.count("visit.ended") == 1
    dwells = [e for e in events if isinstance(e, ZoneDwell) and e.zone_id == "car-05"]
    assert len(dwells) == 1
    assert dwells[0].dwell_s >= 30


def test_someone_first_seen_behind_a_car_is_judged_by_the_cameras_typical_person() -> None:
    cam = front_camera()
    pipeline = EdgePipeline(CONFIG, stamper())
    # Others walking in the open teach the camera what a whole person looks like.
    crowd = [line((x, 17.5), (x, 14.5), 30) for x in (12.0, 14.0, 18.0, 20.0)]
    run(pipeline, cam, crowd, [1.65, 1.8, 1.7, 1.75])
    assert pipeline.stats.cut_boxes == 0, "nobody in the open is cut"
    pause(pipeline, cam, 30, 10)
    arrives_behind = stay(BEHIND_CAR_05, 10)
    frames = run(pipeline, cam, [arrives_behind], [1.72], start_s=40)
    assert pipeline.stats.cut_boxes == len(arrives_behind)
    errors = [nearest(BEHIND_CAR_05, f[1]) for f in frames if f[1]]
    assert len(errors) > 30 and max(errors) < 0.15, f"tracked up to {max(errors):.2f} m from the person"


def test_a_child_walking_in_the_open_is_not_taken_for_a_cut_adult() -> None:
    cam = front_camera()
    pipeline = EdgePipeline(CONFIG, stamper())
    adult = line((14.0, 17.5), (14.0, 14.5), 20)
    child = line((14.6, 17.5), (14.6, 14.5), 20)
    frames = run(pipeline, cam, [adult, child], [1.8, 1.15])
    assert pipeline.stats.cut_boxes == 0
    both_seen = [(here, tracked) for here, tracked, det in frames if len(det) == 2 and len(tracked) == 2]
    assert len(both_seen) > 40
    for here, tracked in both_seen:
        for p in here:
            assert nearest(p, tracked) < 0.2


def test_boxes_that_end_on_a_car_but_are_whole_keep_the_overlay_box_size_current() -> None:
    # Cars half a metre high in the simulator, 1.5 m in the node's configuration: whoever walks behind them
    # ends on the drawn silhouette but is seen whole, and their box shrinks as they walk away.
    low_cars = NoiseModel(p_miss=0, fp_per_frame=0, jitter_frac=0.01, p_occluded_miss=0.0, car_height_m=0.5)
    cam = SimCamera(CONFIG.cameras[FRONT], World(CONFIG), low_cars, np.random.default_rng(0))
    pipeline = EdgePipeline(CONFIG, stamper())
    walk = line(IN_THE_OPEN, BEHIND_CAR_05, 6) + line(BEHIND_CAR_05, (16.6, 8.0), 6) + stay((16.6, 8.0), 2)
    frames = run(pipeline, cam, [walk], [1.75])
    det = frames[-1][2]
    assert len(det) == 1 and pipeline.stats.cut_boxes <= 3  # the low roofs do cut a few boxes
    [(_, box, _)] = pipeline.observed_tracks(cam.id)
    seen_h = float(det.xyxy[0, 3] - det.xyxy[0, 1])
    assert abs(float(box[3] - box[1]) - seen_h) < 0.05 * seen_h
