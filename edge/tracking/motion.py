"""The motion model: constant-velocity Kalman filters in floor metres, one row per track, batched.

State per track: x = (x_m, y_m, vx_mps, vy_mps), covariance P (4, 4). Process noise is white acceleration
of `accel_mps2`; a predicted speed above `max_speed_mps` is clamped (people walk). Measurements are floor
positions (2,) with their own covariance (2, 2), so far, small people get wide gates and near ones tight.
"""

from __future__ import annotations

import numpy as np

from vision_models.arrays import Float64Array


class KalmanBank:
    """Every track's Kalman state as two arrays, rows in the tracker's track order."""

    def __init__(self, accel_mps2: float, max_speed_mps: float) -> None:
        self.accel_mps2 = accel_mps2
        self.max_speed_mps = max_speed_mps
        self.x: Float64Array = np.zeros((0, 4))
        """(T, 4) positions (m) and velocities (m/s)."""
        self.p: Float64Array = np.zeros((0, 4, 4))
        """(T, 4, 4) state covariances."""
        self._motion_cache: tuple[float, Float64Array, Float64Array] | None = None

    def __len__(self) -> int:
        return len(self.x)

    def predict(self, dt: float) -> None:
        """Every track `dt` seconds on."""
        if not len(self.x) or dt <= 0:
            return
        f, qm = self._motion(dt)
        self.x = self.x @ f.T
        self.p = f @ self.p @ f.T + qm
        speed = np.hypot(self.x[:, 2], self.x[:, 3])
        too_fast = speed > self.max_speed_mps
        if too_fast.any():
            self.x[too_fast, 2:] *= (self.max_speed_mps / speed[too_fast])[:, None]

    def _motion(self, dt: float) -> tuple[Float64Array, Float64Array]:
        """Transition and process noise for a step of `dt` seconds (kept for the last step length: frames
        come at a steady rate)."""
        if self._motion_cache is not None and self._motion_cache[0] == dt:
            return self._motion_cache[1], self._motion_cache[2]
        f = np.eye(4)
        f[0, 2] = f[1, 3] = dt
        q = self.accel_mps2**2
        g = np.array([[dt**4 / 4, dt**3 / 2], [dt**3 / 2, dt**2]]) * q
        qm = np.zeros((4, 4))
        qm[np.ix_([0, 2], [0, 2])] = g
        qm[np.ix_([1, 3], [1, 3])] = g
        self._motion_cache = (dt, f, qm)
        return f, qm

    def update(self, rows: list[int], z: Float64Array, r: Float64Array) -> None:
        """Kalman update of tracks `rows` with positions z (K, 2) of covariance r (K, 2, 2), batched."""
        if not rows:
            return
        p = self.p[rows]
        s = p[:, :2, :2] + r
        a, b, c, d = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
        s_inv = np.stack([np.stack([d, -b], 1), np.stack([-c, a], 1)], 1) / (a * d - b * c)[:, None, None]
        k = p[:, :, :2] @ s_inv  # (K, 4, 2)
        innovation = z - self.x[rows, :2]
        self.x[rows] += np.einsum("kij,kj->ki", k, innovation)
        self.p[rows] = p - k @ p[:, :2, :]

    def append(self, xy_m: Float64Array, cov_m2: Float64Array) -> None:
        """A new track standing at `xy_m` (2,) with position covariance `cov_m2` (2, 2); its velocity is
        unknown (zero, with a spread of half the top speed)."""
        x = np.array([[xy_m[0], xy_m[1], 0.0, 0.0]])
        p = np.zeros((1, 4, 4))
        p[0, :2, :2] = cov_m2
        p[0, 2, 2] = p[0, 3, 3] = (0.5 * self.max_speed_mps) ** 2
        self.x = np.concatenate([self.x, x])
        self.p = np.concatenate([self.p, p])

    def keep(self, rows: list[int]) -> None:
        """Only these tracks' rows, in this order."""
        self.x, self.p = self.x[rows], self.p[rows]

    def clear(self) -> None:
        self.x, self.p = np.zeros((0, 4)), np.zeros((0, 4, 4))
