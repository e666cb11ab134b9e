"""Boxes drawn for confirmed tracks (MOT rows, overlays): steady sizes standing on the person's feet.

Where a box stands is the mean of the matched detection's foot point and the track's filtered floor position
seen in the camera (`FEET_SMOOTHING`): a detector's foot point jitters by a few pixels from frame to frame
(a box edge along a line's direction flickers across it: one person walking along a counting line crosses it
again and again), and the filter lags a turn by a step; halfway between, the jitter halves and the lag
stays small."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from edge.floor.calibration import FloorProjection
from edge.floor.feet import Feet
from edge.tracking import TrackState
from vision_models.detections import Detections

BOX_SIZE_SMOOTHING = 0.4
"""Weight of the newest detection in a track's box size (exponential smoothing), for MOT output."""
FEET_SMOOTHING = 0.5
"""Weight of the track's filtered floor position (in the camera's pixels) in where its box stands; the rest
is the matched detection's own foot point."""

OverlayRow = tuple[int, npt.NDArray[np.float32], float]
"""(track id, float32 (4,) xyxy box in the camera's pixels, detector score)."""


class OverlayBoxes:
    """Per (track id, camera id), the track's smoothed box size in that camera, pixels (width, height); its
    height is not taken from boxes a car cut short."""

    def __init__(self) -> None:
        self._wh: dict[tuple[int, str], tuple[float, float]] = {}

    def learn(
        self,
        tracks: Sequence[TrackState],
        detections: Mapping[str, Detections],
        feet: Mapping[str, Feet],
        camera_ids: Iterable[str],
    ) -> None:
        """Take this step's boxes (`track.sources` index into `detections` and `feet`). A track keeps its size
        in a camera that does not see it now; tracks gone from `tracks` are forgotten."""
        sizes: dict[tuple[int, str], tuple[float, float]] = {}
        a = BOX_SIZE_SMOOTHING
        for track in tracks:
            for camera_id, index in track.sources.items():
                x1, y1, x2, y2 = (float(v) for v in detections[camera_id].xyxy[index])
                key = (track.track_id, camera_id)
                old_size = self._wh.get(key)
                if old_size is None:
                    sizes[key] = (x2 - x1, y2 - y1)
                else:
                    h = old_size[1] if feet[camera_id].cut[index] else a * (y2 - y1) + (1 - a) * old_size[1]
                    sizes[key] = (a * (x2 - x1) + (1 - a) * old_size[0], h)
            for camera_id in camera_ids:
                key = (track.track_id, camera_id)
                if key not in sizes and key in self._wh:
                    sizes[key] = self._wh[key]
        self._wh = sizes

    def rows(
        self, tracks: Sequence[TrackState], det: Detections, feet: Feet, projection: FloorProjection
    ) -> list[OverlayRow]:
        """The observed `tracks` that the camera of `projection` sees in `det` (this step's detections, with
        their `feet`), in track order.

        Each box has the track's smoothed size, so it does not breathe with the detector's frame-to-frame
        size jitter, and stands between the matched detection's anchor point (`bottom_center`: the feet, or
        where the feet are when a car cut the box; `center`: its centre) and the track's filtered position
        (`FEET_SMOOTHING`).
        """
        camera_id = projection.camera_id
        shown = []
        for track in tracks:
            index = track.sources.get(camera_id)
            size = self._wh.get((track.track_id, camera_id))
            if track.observed and index is not None and size is not None:
                shown.append((track, index, size))
        if not shown:
            return []
        filtered_px = projection.to_image([track.xy_m for track, _, _ in shown])
        rows = []
        a = FEET_SMOOTHING
        for (track, index, (w, h)), (fx, fy) in zip(shown, filtered_px, strict=True):
            xyxy = det.xyxy[index]
            cx = (float(xyxy[0]) + float(xyxy[2])) / 2
            if projection.anchor == "bottom_center":
                cy = float(feet.row_px[index])
            else:
                cy = (float(xyxy[1]) + float(xyxy[3])) / 2
            if np.isfinite(fx) and np.isfinite(fy):
                cx, cy = a * float(fx) + (1 - a) * cx, a * float(fy) + (1 - a) * cy
            if projection.anchor == "bottom_center":
                box = np.array([cx - w / 2, cy - h, cx + w / 2, cy], dtype=np.float32)
            else:
                box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32)
            rows.append((track.track_id, box, float(det.confidence[index])))
        return rows
