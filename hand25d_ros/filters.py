"""Temporal smoothing that adds little lag: the One Euro filter (Casiez et al., CHI 2012).

A low-pass filter whose cut-off rises with speed: jitter is smoothed while the hand
rests, and fast motion passes with little lag, which is what teleoperation needs.
"""
from __future__ import annotations

import numpy as np


def _alpha(cutoff_hz, dt_s):
    # exponential smoothing factor of a first-order low-pass at cutoff_hz
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """One Euro filter over arrays of any fixed shape (e.g. (21, 3) keypoints).

    Args:
        min_cutoff_hz: cut-off at rest; lower = smoother, more lag at rest.
        beta: how fast the cut-off grows with speed; higher = less lag in fast motion.
        d_cutoff_hz: cut-off of the speed estimate.
    """

    def __init__(self, min_cutoff_hz: float = 1.0, beta: float = 0.05, d_cutoff_hz: float = 1.0):
        if min_cutoff_hz <= 0 or d_cutoff_hz <= 0 or beta < 0:
            raise ValueError("One Euro filter needs min_cutoff_hz > 0, d_cutoff_hz > 0, beta >= 0")
        self.min_cutoff_hz, self.beta, self.d_cutoff_hz = min_cutoff_hz, beta, d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter sample ``x`` taken at time ``t_s`` (seconds, increasing)."""
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            # a broken sample must not poison the state: skip it
            if self._x is None:
                raise ValueError("One Euro filter: first sample contains non-finite values")
            return self._x.copy()
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.copy()
        dt = t_s - self._t
        if dt <= 0:
            # a repeated (or older) stamp gives no time step to smooth over; holding the old
            # state would freeze the output for as long as the stamps repeat (a driver that
            # stamps 0), so the sample passes through and the state follows it
            self._x = x.copy()
            return x.copy()
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff_hz, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff_hz + self.beta * np.abs(self._dx)
        a = _alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t_s
        return self._x.copy()
