"""Array type aliases, named by what they hold and their dtype; one set for the whole product.

The image side (`vision_models`) works in float32, the dtype the networks take and give; the floor side
(`edge`: projection, tracking, analytics) works in float64 metres. The edge imports `vision_models`, never
the other way round, so both sides take their aliases from here. Shapes and units belong in the docstring of
whatever holds the array.
"""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

Float32Array = npt.NDArray[np.float32]
"""Image-side numbers: boxes in pixels, scores, network inputs and embeddings."""

Float64Array = npt.NDArray[np.float64]
"""Floor-side numbers: positions in metres, covariances, filter states."""

IndexArray = npt.NDArray[np.intp]
"""Positions into another array (rows of a `Detections`, say)."""

BoolArray = npt.NDArray[np.bool_]
"""A mask, one flag per row or pixel."""

UInt8Image = npt.NDArray[np.uint8]
"""An 8-bit image, (H, W, 3) BGR as OpenCV reads it unless its holder says otherwise."""

XY = tuple[float, float]
"""A point or vector (x, y) as plain floats: on the floor plan in metres (`xy_m`), in metres per second
for a velocity (`velocity_mps`)."""

_Scalar = TypeVar("_Scalar", bound=np.generic)


def read_only(array: npt.NDArray[_Scalar]) -> npt.NDArray[_Scalar]:
    """`array` made unchangeable, for a validated type to hold: the array itself when it is read-only and
    no writable array shares its memory (a subset of another validated array), else a read-only copy,
    so that a caller keeping the array it passed in cannot change what was validated."""
    if _immutable(array):
        return array
    copy = array.copy()
    copy.setflags(write=False)
    return copy


def _immutable(array: npt.NDArray[Any]) -> bool:
    """Whether nothing can write into `array`: it and every array it is a view of are read-only."""
    base: object = array
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None


__all__ = ["XY", "BoolArray", "Float32Array", "Float64Array", "IndexArray", "UInt8Image", "read_only"]
