"""Integer-aware fine-tuning after pruning: the torch L2MU trained with every weight matrix fake-quantised to the
integer model's int8 grid (w -> round(w 2^k) 2^-k in the forward pass, straight-through gradients), pruned weights
held at zero. The weights it saves lie on that grid, so the integer model quantises them without loss and the
model validated here is the model the engine runs."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from deploy.integer.quantize import INT8_MAX, memory_matrices, power_of_two_exponent, to_int8
from training.l2mu import L2MU
from training.loop import History, fit
from training.network import SYNAPSES
from training.normalization import Normalization
from training.train_config import TrainConfig
from training.windowing import Windows

MATRICES = tuple(s.name for s in SYNAPSES if s.form == "dense")  # the nn.Linear weight matrices


class FakeInt8(nn.Module):
    """W -> W + (q(W) - W).detach(), q(W) = clip(round(W 2^k), -127, 127) 2^-k, k = floor(log2(127 / max|W|));
    entries pruned to zero stay zero."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", (weight != 0).to(weight.dtype))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        w = w * self.mask
        top = w.detach().abs().max()
        if top == 0:
            return w
        scale = 2.0 ** torch.floor(torch.log2(INT8_MAX / top))
        q = torch.clamp(torch.round(w.detach() * scale), -INT8_MAX, INT8_MAX) / scale
        return w + (q - w).detach()


def _targets(model: L2MU) -> list[tuple[nn.Module, str]]:
    return [(model, "channel_weight"), *((getattr(model, name), "weight") for name in MATRICES)]


def quantise_memory(model: L2MU) -> None:
    """A_bar, B_bar (frozen buffers) replaced by their values on the integer model's grid."""
    a, b = model.A_bar.numpy(), model.B_bar.numpy()
    big_a, big_b = memory_matrices(model.cfg, a, b)
    for name, small, big in (("A_bar", a, big_a), ("B_bar", b, big_b)):
        k = power_of_two_exponent(big)
        getattr(model, name).copy_(torch.from_numpy((to_int8(small, k) / 2.0**k).astype(np.float32)))


def integer_finetune(model: L2MU, train: Windows, val: Windows, norm: Normalization, epochs: int, lr: float,
                     batch_size: int, seed: int, augment_deg: float) -> History:
    """Fine-tune `model` in place through the fake-quantised forward; on return its weights lie on the int8 grid."""
    with torch.no_grad():
        quantise_memory(model)
    for module, name in _targets(model):
        parametrize.register_parametrization(module, name, FakeInt8(getattr(module, name).detach()))
    history = fit(model, train, val, norm, TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=epochs,
                                                       seed=seed, augment_deg=augment_deg))
    for module, name in _targets(model):
        parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return history
