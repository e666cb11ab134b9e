"""The result of a calibration check (`edge.floor.calibration_check`): per camera, every point pair's held-out
error, the fit, and the findings that make the verdict."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vision_models.arrays import Float64Array

Verdict = Literal["ok", "warn", "reject"]
FindingKind = Literal["count", "fit", "pair", "units", "layout", "frame"]


@dataclass(frozen=True)
class Finding:
    """One reason for a verdict. `key` is relative to the camera: `calibration` or `calibration[i]`."""

    kind: FindingKind
    key: str
    message: str


@dataclass(frozen=True)
class PairCheck:
    """One image-to-floor pair of a calibration.

    Attributes:
        index: its position in `image_points_px` / `floor_points_m`.
        image_px: the image point, pixels.
        floor_m: the floor mark, metres.
        held_out_error_m: distance on the floor between the mark and its image point projected through a fit
            of the other pairs, metres; None when the others cannot be fitted (4 pairs, or a degenerate rest).
        fit_error_m: the same distance under the robust fit of all pairs; None without a fit.
        used_by_fit: whether the robust fit of all pairs kept it.
        rejected: whether this pair is named as a reason to reject.
    """

    index: int
    image_px: tuple[float, float]
    floor_m: tuple[float, float]
    held_out_error_m: float | None
    fit_error_m: float | None
    used_by_fit: bool
    rejected: bool

    @property
    def key(self) -> str:
        return f"calibration[{self.index}]"


@dataclass(frozen=True)
class CalibrationReport:
    """The check of one camera's calibration.

    Attributes:
        camera_id, camera_index: the camera and its position in the config's `cameras`.
        max_loo_error_m: the held-out error limit applied, metres.
        pairs: one `PairCheck` per pair, in config order.
        homography: float64 (3, 3), image pixels -> floor metres, the robust fit of all pairs; None when the
            pairs cannot be fitted.
        fit_error_m: mean distance of the kept pairs under that fit (always ~0 with 4 pairs: not evidence).
        problems: reasons to reject; warnings: reasons to look again.
    """

    camera_id: str
    camera_index: int
    max_loo_error_m: float
    pairs: tuple[PairCheck, ...]
    homography: Float64Array | None
    fit_error_m: float | None
    problems: tuple[Finding, ...]
    warnings: tuple[Finding, ...]

    @property
    def verdict(self) -> Verdict:
        return "reject" if self.problems else "warn" if self.warnings else "ok"

    @property
    def rejected_pairs(self) -> tuple[int, ...]:
        return tuple(p.index for p in self.pairs if p.rejected)

    @property
    def discarded_pairs(self) -> tuple[int, ...]:
        """Pairs the robust fit of all pairs left out (empty without a fit)."""
        if self.homography is None:
            return ()
        return tuple(p.index for p in self.pairs if not p.used_by_fit)

    @property
    def held_out_errors_m(self) -> list[float]:
        return [p.held_out_error_m for p in self.pairs if p.held_out_error_m is not None]

    @property
    def held_out_mean_m(self) -> float | None:
        errors = self.held_out_errors_m
        return float(np.mean(errors)) if errors else None

    @property
    def held_out_max_m(self) -> float | None:
        errors = self.held_out_errors_m
        return max(errors) if errors else None

    def key_path(self, key: str) -> str:
        """A finding's key as a path in the node config, e.g. `cameras[1].calibration[3]`."""
        return f"cameras[{self.camera_index}].{key}"

    def summary(self) -> str:
        """One line: pairs, held-out errors against the limit, verdict."""
        n = len(self.pairs)
        if self.held_out_max_m is None:
            held = "held-out error not measurable"
        else:
            held = f"held-out error mean {self.held_out_mean_m:.3f} m, max {self.held_out_max_m:.3f} m"
        verdict = {"ok": "OK", "warn": "OK with warnings", "reject": "REJECTED"}[self.verdict]
        rejected = ", ".join(f"calibration[{i}]" for i in self.rejected_pairs)
        tail = f" ({rejected})" if rejected else ""
        return (
            f"calibration {self.camera_id}: {n} pairs, {held} (limit {self.max_loo_error_m:.2f} m): "
            f"{verdict}{tail}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (numbers in metres and pixels)."""
        return {
            "camera_id": self.camera_id,
            "camera_index": self.camera_index,
            "verdict": self.verdict,
            "max_loo_error_m": self.max_loo_error_m,
            "held_out_mean_m": self.held_out_mean_m,
            "held_out_max_m": self.held_out_max_m,
            "fit_error_m": self.fit_error_m,
            "rejected_pairs": [f"calibration[{i}]" for i in self.rejected_pairs],
            "discarded_pairs": [f"calibration[{i}]" for i in self.discarded_pairs],
            "pairs": [
                {
                    "key": p.key,
                    "image_px": list(p.image_px),
                    "floor_m": list(p.floor_m),
                    "held_out_error_m": _finite_or_none(p.held_out_error_m),
                    "fit_error_m": _finite_or_none(p.fit_error_m),
                    "used_by_fit": p.used_by_fit,
                    "rejected": p.rejected,
                }
                for p in self.pairs
            ],
            "problems": [{"kind": f.kind, "key": f.key, "message": f.message} for f in self.problems],
            "warnings": [{"kind": f.kind, "key": f.key, "message": f.message} for f in self.warnings],
            "homography": None if self.homography is None else self.homography.tolist(),
        }


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None
