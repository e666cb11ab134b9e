"""The simulated camera: consistent with its calibration, sees what its view holds, faults as configured."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import load_config
from edge.sim.appearance import SimAppearance
from edge.sim.camera import SimCamera, SimCameraError, apply_homography
from edge.sim.scenarios import NoiseModel
from edge.sim.world import World

CONFIG = load_config(Path(__file__).parents[3] / "examples" / "sim-store.yaml")
WORLD = World(CONFIG)


def camera(index: int, noise: NoiseModel | None = None, seed: int = 0) -> SimCamera:
    return SimCamera(CONFIG.cameras[index], WORLD, noise or NoiseModel.perfect(), np.random.default_rng(seed))


def calibration_homography(index: int) -> np.ndarray:
    """Image-to-floor homography fitted independently of the simulator, as the node would."""
    cal = CONFIG.cameras[index].calibration
    assert cal is not None
    hom, _ = cv2.findHomography(np.array(cal.image_points_px), np.array(cal.floor_points_m), cv2.RANSAC, 0.05)
    return np.asarray(hom)


@pytest.mark.parametrize("index", range(len(CONFIG.cameras)))
def test_box_anchors_project_back_onto_the_true_floor_position(index: int) -> None:
    cam = camera(index)
    rng = np.random.default_rng(index)
    xy = np.stack([rng.uniform(0.5, 29.5, 400), rng.uniform(0.5, 19.5, 400)], axis=1)
    _, visible = cam.project(xy)
    boxes = cam.boxes(xy)
    w = cam.resolution_wh[0]
    whole = (boxes[:, 0] >= 0) & (boxes[:, 2] <= w) & (boxes[:, 1] >= 0)  # not cut by the image's edge
    assert len(cam.detect(xy, np.zeros(len(xy), bool))) == visible.sum()
    xy = xy[visible & whole]
    visible = np.ones(len(xy), bool)
    dets = cam.detect(xy, np.zeros(len(xy), bool))
    assert len(dets) == len(xy) > 20
    floor, _ = apply_homography(
        calibration_homography(index), dets.anchors(CONFIG.cameras[index].anchor).astype(float)
    )
    # Detections come out in the order of the visible people.
    assert np.abs(floor - xy[visible]).max() < 0.02


@pytest.mark.parametrize("index", range(len(CONFIG.cameras)))
def test_calibration_points_map_to_their_pixels(index: int) -> None:
    cam = camera(index)
    cal = CONFIG.cameras[index].calibration
    assert cal is not None
    uv, ok = cam.project(np.array(cal.floor_points_m))
    assert ok.all()
    assert np.abs(uv - np.array(cal.image_points_px)).max() < 1.0


def test_field_of_view_cuts_what_the_camera_cannot_see() -> None:
    entrance = camera(2)  # looks at the doors only
    dets = entrance.detect(np.array([[16.0, 18.0], [5.0, 5.0]]), np.zeros(2, bool))
    assert len(dets) == 1


def test_people_sitting_inside_a_car_vanish() -> None:
    cam = camera(3)
    seat = WORLD.cars[0].seat_for(0)
    assert len(cam.detect(np.array([seat]), np.array([False]))) == 1
    assert len(cam.detect(np.array([seat]), np.array([True]))) == 0


def test_a_person_behind_a_car_is_hidden_one_in_front_is_not() -> None:
    noise = NoiseModel(p_miss=0, fp_per_frame=0, jitter_frac=0, p_occluded_miss=1.0, car_height_m=1.5)
    front = camera(3, noise)  # on the front wall, looking towards the back (smaller y is farther)
    car = WORLD.cars[4]  # car-05, interior y 11.2-13.1
    behind, before = np.array([[15.0, 10.6]]), np.array([[15.0, 13.7]])
    assert len(front.detect(behind, np.array([False]))) == 0
    assert len(front.detect(before, np.array([False]))) == 1
    assert car.interior.bounds[1] > behind[0, 1]


def test_cut_boxes_end_at_the_roof_line_when_not_missed() -> None:
    noise = NoiseModel(p_miss=0, fp_per_frame=0, jitter_frac=0, p_occluded_miss=0.0, car_height_m=1.0)
    front = camera(3, noise)
    xy = np.array([[15.0, 10.8]])
    full = front.boxes(xy)[0]
    cut = front.detect(xy, np.array([False]))
    assert len(cut) == 1
    assert cut.xyxy[0, 3] < full[3] - 5  # feet hidden: the box's bottom edge is higher up


def test_misses_false_positives_and_jitter_follow_the_noise_model() -> None:
    noise = NoiseModel(p_miss=0.2, fp_per_frame=1.5, jitter_frac=0.02, p_occluded_miss=0.0, car_height_m=0.0)
    cam = camera(3, noise, seed=4)
    xy = np.array([[15.0, 15.5]])
    clean = camera(3).boxes(xy)[0]
    hits, fps, bottoms = 0, 0, []
    for _ in range(2000):
        dets = cam.detect(xy, np.array([False]))
        near = np.abs(dets.xyxy[:, 3] - clean[3]) < 0.1 * (clean[3] - clean[1])
        near &= np.abs(dets.xyxy[:, 0] - clean[0]) < 0.1 * (clean[3] - clean[1])
        hits += int(near.any())
        fps += len(dets) - int(near.sum())
        bottoms += list(dets.xyxy[near, 3])
    assert hits / 2000 == pytest.approx(0.8, abs=0.03)
    assert fps / 2000 == pytest.approx(1.5, abs=0.15)
    sigma = np.std(bottoms) / (clean[3] - clean[1])
    assert sigma == pytest.approx(0.02, abs=0.005)


def test_same_seed_same_detections() -> None:
    noise = NoiseModel()
    xy = np.stack([np.linspace(2, 28, 30), np.linspace(3, 18, 30)], axis=1)
    a = [camera(0, noise, seed=9).detect(xy, np.zeros(30, bool)).xyxy for _ in range(1)]
    b = [camera(0, noise, seed=9).detect(xy, np.zeros(30, bool)).xyxy for _ in range(1)]
    c = camera(0, noise, seed=10).detect(xy, np.zeros(30, bool)).xyxy
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c) if a[0].shape == c.shape else True


def test_a_camera_without_calibration_is_refused() -> None:
    uncalibrated = CONFIG.cameras[0].model_copy(update={"calibration": None})
    with pytest.raises(SimCameraError, match="no calibration"):
        SimCamera(uncalibrated, WORLD, NoiseModel(), np.random.default_rng(0))


def _views(looks: SimAppearance, n: int, rng: np.random.Generator, front: int = -1) -> np.ndarray:
    """One clear box of each of n people (or each half hidden by person `front`), embedded."""
    embed = looks.embedder(
        np.arange(n),
        np.zeros(n, bool),
        np.full(n, front),
        np.full(n, 0.5 if front >= 0 else 0.0),
        np.zeros(n, bool),
        rng,
    )
    return embed(np.arange(n)).astype(np.float64)


def test_embeddings_are_as_telling_as_the_real_re_identification_model() -> None:
    """Box-to-box cosines of the default noise model against person-reid-0288 on PETS09-S2L1 ground truth
    (BENCHMARKS.md: same person 0.880, different people 0.762, ROC AUC 0.813, for clear boxes)."""
    looks = SimAppearance(NoiseModel(), seed=3)
    rng = np.random.default_rng(1)
    first, second = _views(looks, 300, rng), _views(looks, 300, rng)
    cos = first @ second.T
    same, diff = np.diag(cos), cos[~np.eye(300, dtype=bool)]
    auc = float((same[:, None] > diff[None, ::50]).mean())
    print(f"same person {same.mean():.3f}, different people {diff.mean():.3f}, AUC {auc:.3f}")
    assert abs(same.mean() - 0.880) < 0.03 and abs(diff.mean() - 0.762) < 0.03
    assert 0.76 < auc < 0.86
    # A box half hidden by someone else takes some of their appearance.
    hidden = _views(looks, 300, rng, front=0)
    assert (hidden @ first[0])[1:].mean() > diff.mean() + 0.03


def test_a_cameras_boxes_embed_as_the_people_they_show() -> None:
    looks = SimAppearance(NoiseModel(), seed=3)
    cam = SimCamera(
        CONFIG.cameras[0],
        WORLD,
        NoiseModel.perfect(),
        np.random.default_rng(0),
        looks,
        np.random.default_rng(1),
    )
    grid = np.stack(np.meshgrid(np.arange(1.0, 30.0, 3.0), np.arange(1.0, 20.0, 3.0)), axis=-1).reshape(-1, 2)
    _, seen = cam.project(grid)
    xy = grid[seen][[0, int(seen.sum()) // 2, -1]]
    dets = cam.detect(xy, np.zeros(3, bool), person_ids=np.array([7, 8, 9]), staff=np.zeros(3, bool))
    assert dets.appearance is not None and len(dets) == 3
    emb = dets.appearance(np.arange(len(dets))).astype(np.float64)
    assert emb.shape == (len(dets), 256) and np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    floor, _ = apply_homography(calibration_homography(0), dets.anchors("bottom_center").astype(float))
    who = np.linalg.norm(floor[:, None] - xy[None], axis=2).argmin(axis=1)
    people = np.stack([looks.person(p) for p in (7, 8, 9)])
    assert ((emb @ people.T).argmax(axis=1) == who).all()


def test_without_an_appearance_model_detections_carry_none_and_faults_stay_the_same() -> None:
    xy = np.array([[10.0, 10.0], [12.0, 8.0], [20.0, 12.0]])
    plain = SimCamera(CONFIG.cameras[0], WORLD, NoiseModel(), np.random.default_rng(5))
    with_looks = SimCamera(
        CONFIG.cameras[0], WORLD, NoiseModel(), np.random.default_rng(5), SimAppearance(NoiseModel(), 1)
    )
    a = plain.detect(xy, np.zeros(3, bool))
    b = with_looks.detect(xy, np.zeros(3, bool), person_ids=np.arange(3), staff=np.zeros(3, bool))
    assert a.appearance is None and b.appearance is not None
    assert np.array_equal(a.xyxy, b.xyxy) and np.array_equal(a.confidence, b.confidence)
