"""The Legendre delay system of the LMU and its zero-order-hold discretisation (Voelker et al., 2019)."""

from __future__ import annotations

import numpy as np
from scipy.linalg import expm


def legendre_system(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (A, B) with theta * dm/dt = A m + B u."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    i = np.arange(order)[:, None]
    j = np.arange(order)[None, :]
    # A_ij = (2i+1) * (-1 if i < j else (-1)^(i-j+1))
    a = (2 * i + 1) * np.where(i < j, -1.0, (-1.0) ** (i - j + 1))
    # B_i = (2i+1) * (-1)^i
    b = (2 * np.arange(order) + 1) * (-1.0) ** np.arange(order)
    return a, b


def zoh_legendre(order: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """A_bar = exp(A/theta), B_bar = A^-1 (A_bar - I) B, both from one expm of the augmented system (dt = 1 step)."""
    if theta <= 0:
        raise ValueError(f"theta must be positive (in steps), got {theta}")
    a, b = legendre_system(order)
    aug = np.zeros((order + 1, order + 1))
    aug[:order, :order] = a / theta
    aug[:order, order] = b / theta
    e = expm(aug)  # expm([[A/theta, B/theta], [0, 0]]) = [[A_bar, B_bar], [0, 1]]
    return e[:order, :order], e[:order, order]
