"""Training-time augmentation in SI units: the watch sits at a slightly different angle on every wrist."""

from __future__ import annotations

import numpy as np


def random_rotations(rng: np.random.Generator, n: int, max_deg: float) -> np.ndarray:
    """n rotation matrices (n, 3, 3) about random axes by angles uniform in [-max_deg, max_deg]."""
    axis = rng.normal(size=(n, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.deg2rad(rng.uniform(-max_deg, max_deg, size=n))[:, None, None]
    k = np.zeros((n, 3, 3))
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k -= k.transpose(0, 2, 1)
    # Rodrigues: R = I + sin(a) K + (1 - cos(a)) K^2
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def augment(x: np.ndarray, rng: np.random.Generator, max_deg: float = 20.0, max_scale: float = 0.1) -> np.ndarray:
    """Rotate accelerometer and gyroscope of each window (N, T, 6) by one shared rotation and scale the amplitude."""
    r = random_rotations(rng, len(x), max_deg).astype(np.float32)
    scale = rng.uniform(1 - max_scale, 1 + max_scale, size=(len(x), 1, 1)).astype(np.float32)
    acc = np.einsum("nij,ntj->nti", r, x[..., :3])
    gyro = np.einsum("nij,ntj->nti", r, x[..., 3:])
    return np.concatenate([acc, gyro], axis=-1) * scale
