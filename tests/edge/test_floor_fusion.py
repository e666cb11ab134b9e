"""Camera fusion: one floor detection per person however many cameras see them."""

from __future__ import annotations

import numpy as np

from edge.floor.feet import Feet
from edge.floor.fusion import fuse_cameras
from edge.floor.projection import CameraFloor


def view(camera_id: str, xy_m: list[tuple[float, float]], sigma_m: float = 0.1) -> CameraFloor:
    """A camera whose every box landed on the floor at `xy_m` with an isotropic `sigma_m` uncertainty."""
    n = len(xy_m)
    zeros = np.zeros(n)
    return CameraFloor(
        camera_id=camera_id,
        index=np.arange(n, dtype=np.intp),
        xy_m=np.array(xy_m, dtype=np.float64).reshape(n, 2),
        cov_m2=np.tile(np.eye(2) * sigma_m**2, (n, 1, 1)),
        score=np.linspace(0.5, 0.9, n),
        feet=Feet(zeros, zeros.astype(bool), zeros.astype(bool), zeros),
        out_of_image_boxes=0,
        off_floor=0,
    )


def test_no_detections_fuse_to_none() -> None:
    assert len(fuse_cameras([view("cam-a", []), view("cam-b", [])], radius_m=0.8)) == 0


def test_one_person_seen_by_two_cameras_is_one_detection_weighted_by_certainty() -> None:
    fused = fuse_cameras([view("cam-a", [(1.0, 2.0)], 0.1), view("cam-b", [(1.3, 2.0)], 0.2)], radius_m=0.8)
    assert fused.sources == ({"cam-a": 0, "cam-b": 0},)
    # Information weights 1/0.01 and 1/0.04: four fifths of the way to the more certain camera.
    np.testing.assert_allclose(fused.xy_m[0], [1.06, 2.0])
    np.testing.assert_allclose(fused.cov_m2[0], np.eye(2) * 0.008)


def test_two_boxes_from_one_camera_are_two_people_however_close() -> None:
    fused = fuse_cameras([view("cam-a", [(1.0, 2.0), (1.2, 2.0)]), view("cam-b", [(5.0, 5.0)])], radius_m=0.8)
    assert sorted(map(sorted, (s.items() for s in fused.sources))) == [
        [("cam-a", 0)],
        [("cam-a", 1)],
        [("cam-b", 0)],
    ]


def test_each_person_pairs_with_the_closest_box_of_the_other_camera() -> None:
    a = view("cam-a", [(1.0, 2.0), (1.6, 2.0)])
    b = view("cam-b", [(1.5, 2.0), (1.1, 2.0)])
    fused = fuse_cameras([a, b], radius_m=0.8)
    assert sorted(tuple(sorted(s.items())) for s in fused.sources) == [
        (("cam-a", 0), ("cam-b", 1)),
        (("cam-a", 1), ("cam-b", 0)),
    ]
