"""Heat grids as stored: float32 person-seconds, row-major [iy, ix], zlib-compressed."""

from __future__ import annotations

import zlib

import numpy as np
import numpy.typing as npt


def encode_grid(grid: npt.NDArray[np.float32]) -> bytes:
    """Blob of a (ny, nx) grid."""
    return zlib.compress(np.ascontiguousarray(grid, dtype="<f4").tobytes(), 1)


def decode_grid(blob: bytes, nx: int, ny: int) -> npt.NDArray[np.float32]:
    """The (ny, nx) grid of a blob from `encode_grid`."""
    return np.frombuffer(zlib.decompress(blob), dtype="<f4").reshape(ny, nx).astype(np.float32)
