"""The integer L2MU as data: int8 weight matrices with power-of-two scales, integer constants per population.

Every population p keeps its membranes as int32 in units of 2^-F_p (its fraction bits). A weight matrix W into p is
stored as int8 w_q = round(W 2^k) with its own k, and a spike of its source adds w_q << (F_p - k): exact, because
F_p >= k for every matrix into p. The leak beta is a Q15 fixed-point number (docs/integer-engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BETA_BITS = 15  # beta_q = round(beta 2^15)
INPUT_BITS = 11  # x_q = clip(round(z 2^11), -32768, 32767): the normalised sample as int16, |z| < 16
INT16 = (-32768, 32767)
INT32 = (-(2**31), 2**31 - 1)


@dataclass(frozen=True)
class Population:
    name: str
    size: int
    frac_bits: int  # F: membranes, thresholds and biases are integers in units of 2^-F
    beta_q: int  # leak in Q15, 0 .. 2^15
    threshold_q: int  # > 0
    bias_q: np.ndarray  # int32 (size,), zeros where the float model has no bias


@dataclass(frozen=True)
class Projection:
    """Spikes of `source` (this step's, or the previous step's when `delayed`) into `target` through int8 weights."""

    target: str
    source: str
    delayed: bool
    weight_q: np.ndarray  # int8 (target size, source size)
    shift: int  # a spike of source neuron j adds weight_q[:, j] << shift


@dataclass(frozen=True)
class InputProjection:
    """The per-channel populations' currents from the int16 sample: I_i = (w_q[i] x_q[channel[i]]) << shift."""

    weight_q: np.ndarray  # int8 (channel population size,)
    channel: np.ndarray  # (channel population size,) index into the loader-order sample
    shift: int


@dataclass(frozen=True)
class IntegerL2MU:
    populations: tuple[Population, ...]  # in step order; the last one is the output population
    projections: tuple[Projection, ...]  # grouped by target, in step order
    input: InputProjection  # into populations[0]

    @property
    def n_classes(self) -> int:
        return self.populations[-1].size

    @property
    def n_neurons(self) -> int:
        return sum(p.size for p in self.populations)

    def population(self, name: str) -> Population:
        return next(p for p in self.populations if p.name == name)

    def into(self, name: str) -> list[Projection]:
        return [q for q in self.projections if q.target == name]

    def nonzero_weights(self) -> int:
        return int(sum(np.count_nonzero(q.weight_q) for q in self.projections) + np.count_nonzero(self.input.weight_q))


def quantize_input(z: np.ndarray) -> np.ndarray:
    """The boundary: x_q = clip(round_half_even(z 2^11), -32768, 32767) for normalised samples z."""
    return np.clip(np.rint(np.asarray(z, np.float64) * 2.0**INPUT_BITS), *INT16).astype(np.int16)
