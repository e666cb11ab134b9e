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


def add_cells(
    found: tuple[int, int, bytes] | None, cells: dict[tuple[int, int], float]
) -> tuple[int, int, float, bytes]:
    """A stored grid (nx, ny, blob; None if there is none yet) with person-seconds added per (ix, iy) cell,
    grown to hold them: (nx, ny, total person-seconds, blob). Both storage backends merge grids with this,
    so their grids hold the same bytes."""
    ix = np.fromiter((c[0] for c in cells), dtype=np.int64, count=len(cells))
    iy = np.fromiter((c[1] for c in cells), dtype=np.int64, count=len(cells))
    ps = np.fromiter(cells.values(), dtype=np.float64, count=len(cells))
    nx = int(ix.max()) + 1 if len(ix) else 0
    ny = int(iy.max()) + 1 if len(iy) else 0
    if found is not None:
        old = decode_grid(bytes(found[2]), int(found[0]), int(found[1]))
        nx, ny = max(nx, old.shape[1]), max(ny, old.shape[0])
        grid = np.zeros((ny, nx), dtype=np.float64)
        grid[: old.shape[0], : old.shape[1]] = old
    else:
        grid = np.zeros((ny, nx), dtype=np.float64)
    np.add.at(grid, (iy, ix), ps)
    return nx, ny, float(grid.sum()), encode_grid(grid.astype(np.float32))
