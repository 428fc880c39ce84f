"""The L2MU: a Legendre Memory Unit whose every population is a population of LIF neurons (docs/l2mu.md).

`step` advances the network by one sensor sample through the snnTorch neurons: the definition that export and
streaming use (`step_loop` loops it over a window). `run`, the window forward that training and evaluation use,
computes the same equations population by population (training/l2mu_fused.py): each feed-forward population
(channel, encoder, decoder, out) gets its currents for all T steps from one matrix product, and only the recurrent
cell (u, m, h) steps in time, its recurrent products of s_h[t-1] and s_m[t-1] fused into one product per step;
gradients are hand-written BPTT instead of an autograd graph per step. tests/test_fast_step.py checks that `run`
gives the spikes, membranes and gradients of `step_loop`.
"""

from __future__ import annotations

import math

import numpy as np
import snntorch as snn
import torch
from torch import nn

from training.config import L2MUConfig
from training.l2mu_layout import MODEL_CHANNEL_ORDER
from training.l2mu_fused import Law, cell_sequence, lif_sequence
from training.legendre import zoh_legendre
from training.network import POPULATIONS, describe

State = dict[str, torch.Tensor]


class L2MU(nn.Module):
    def __init__(self, cfg: L2MUConfig) -> None:
        super().__init__()
        self.cfg = cfg
        P, E, O, M, d, H, C = (cfg.pop_per_channel, cfg.encoder_size, cfg.encoder_out, cfg.memory_size,
                               cfg.order, cfg.hidden_size, cfg.n_classes)
        # Input module: per-channel populations, encoder, output transformer (all with bias).
        self.channel_weight = nn.Parameter(torch.empty(cfg.channels, P).uniform_(-1.0, 1.0))  # Linear(1 -> P) init
        self.channel_bias = nn.Parameter(torch.empty(cfg.channels, P).uniform_(-1.0, 1.0))
        self.encoder = nn.Linear(cfg.channels * P, E)
        self.decoder = nn.Linear(E, O)
        # L2MU cell (no biases).
        self.e_x, self.e_h, self.e_m = nn.Linear(O, M, bias=False), nn.Linear(H, M, bias=False), nn.Linear(M * d, M, bias=False)
        self.w_x, self.w_h, self.w_m = nn.Linear(O, H, bias=False), nn.Linear(H, H, bias=False), nn.Linear(M * d, H, bias=False)
        self.out = nn.Linear(H, C)
        for layer in (self.e_x, self.e_h):
            bound = math.sqrt(3.0 / layer.in_features)  # LeCun uniform
            nn.init.uniform_(layer.weight, -bound, bound)
        nn.init.zeros_(self.e_m.weight)
        for layer in (self.w_x, self.w_h, self.w_m):
            nn.init.xavier_normal_(layer.weight)
        a_bar, b_bar = zoh_legendre(d, cfg.theta)
        self.register_buffer("A_bar", torch.tensor(a_bar, dtype=torch.float32))  # frozen, shared by all M channels
        self.register_buffer("B_bar", torch.tensor(b_bar, dtype=torch.float32))
        self.register_buffer("channel_order", torch.tensor(MODEL_CHANNEL_ORDER), persistent=False)
        self.lif = nn.ModuleDict({pop: self._neuron(pop) for pop in POPULATIONS})

    def _neuron(self, pop: str) -> nn.Module:
        beta, threshold = self.cfg.neuron_params[pop]
        learn = {"learn_beta": self.cfg.learn_neuron_params, "learn_threshold": self.cfg.learn_neuron_params}
        if self.cfg.neuron == "synaptic":
            return snn.Synaptic(alpha=self.cfg.alpha, beta=beta, threshold=threshold, reset_mechanism="subtract",
                                learn_alpha=self.cfg.learn_neuron_params, **learn)
        return snn.Leaky(beta=beta, threshold=threshold, reset_mechanism="subtract", **learn)

    def initial_state(self, batch: int) -> State:
        """Every membrane (and synaptic current) and the spikes fed back, all zero: the start of a window."""
        z = self.channel_weight.new_zeros
        return {key: z(batch, n) for key, n in describe(self.cfg).state(spikes=True).items()}

    def _fire(self, pop: str, current: torch.Tensor, state: State, new: State) -> torch.Tensor:
        lif = self.lif[pop]
        current = self._noisy(pop, current)  # robustness to int8 rounding of membranes
        if self.cfg.neuron == "synaptic":
            # I_syn[t] = a I_syn[t-1] + I[t];  U[t] = b U[t-1] + I_syn[t] - R[t] thr;  S[t] = H(U[t] - thr)
            spk, new[f"syn_{pop}"], new[f"mem_{pop}"] = lif(current, state[f"syn_{pop}"], state[f"mem_{pop}"])
        else:
            # U[t] = b U[t-1] + I[t] - R[t] thr, with R[t] = H(U[t-1] - thr);  S[t] = H(U[t] - thr)
            spk, new[f"mem_{pop}"] = lif(current, state[f"mem_{pop}"])
        new[f"spk_{pop}"] = spk
        return spk

    def step(self, x_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """Advance by one normalised sample x_t (B, 6) in loader order; return output spikes (B, C) and the new state."""
        new: State = {}
        M, d = self.cfg.memory_size, self.cfg.order
        # Input module: raw floats in, spikes out (encoding-free).
        i_ch = x_t[:, self.channel_order, None] * self.channel_weight + self.channel_bias  # I_c = w_c x_c + b_c
        s_ch = self._fire("channel", i_ch.flatten(1), state, new)
        s_enc = self._fire("encoder", self.encoder(s_ch), state, new)
        s_in = self._fire("decoder", self.decoder(s_enc), state, new)
        s_h_prev, s_m_prev = state["spk_h"], state["spk_m"]
        # I_u = E_x s_in[t] + E_h s_h[t-1] + E_m s_m[t-1]
        s_u = self._fire("u", self.e_x(s_in) + self.e_h(s_h_prev) + self.e_m(s_m_prev), state, new)
        # I_m,k = A_bar s_m,k[t-1] + B_bar s_u,k[t]   for each memory channel k
        i_m = s_m_prev.view(-1, M, d) @ self.A_bar.T + s_u[:, :, None] * self.B_bar
        s_m = self._fire("m", i_m.flatten(1), state, new)
        # I_h = W_x s_in[t] + W_h s_h[t-1] + W_m s_m[t]
        s_h = self._fire("h", self.w_x(s_in) + self.w_h(s_h_prev) + self.w_m(s_m), state, new)
        # I_o = W_o s_h[t] + b_o
        s_o = self._fire("out", self.out(s_h), state, new)
        return s_o, new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Spike counts per class (B, C) for windows x (B, T, 6): logits = sum_t s_o[t]."""
        return self.run(x)[0]

    def run(self, x: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Spike counts (B, C) of windows x (B, T, 6) from the zero state; with `record`, also every population's
        spikes (B, T, N). Same equations as the loop over `step`, evaluated population by population."""
        spikes, _ = self.trace(x)
        counts = spikes["out"].sum(1)  # logits = sum_t s_o[t]
        return counts, ({pop: s.detach() for pop, s in spikes.items()} if record else {})

    def trace(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Spikes and membranes of every population over windows x (B, T, 6), each (B, T, N)."""
        c = self.cfg
        M, d, H = c.memory_size, c.order, c.hidden_size
        xt = x.transpose(0, 1)  # time-major (T, B, 6) inside
        spikes, mems = {}, {}

        def fire(pop: str, current: torch.Tensor) -> torch.Tensor:
            spikes[pop], mems[pop] = lif_sequence(self._noisy(pop, current), self._law(pop))
            return spikes[pop]

        s_ch = fire("channel", (xt[:, :, self.channel_order, None] * self.channel_weight
                                + self.channel_bias).flatten(2))  # I_c = w_c x_c + b_c
        s_in = fire("decoder", self.decoder(fire("encoder", self.encoder(s_ch))))
        # [E_x s_in[t], W_x s_in[t], 0] for all t in one product; noise of u, h, m added here
        x_cell = s_in @ torch.cat([self.e_x.weight, self.w_x.weight]).T
        drive = torch.cat([x_cell, xt.new_zeros(*xt.shape[:2], M * d)], -1)
        if self.training and c.current_noise > 0:
            cols = (("u", M), ("h", H), ("m", M * d))
            drive = drive + torch.cat([self._noise(pop, drive[..., :n]) for pop, n in cols], -1)
        # [s_h[t-1], s_m[t-1]] -> [E_h s_h + E_m s_m, W_h s_h, A_bar s_m,k for every k]
        w_rec = torch.cat([
            torch.cat([self.e_h.weight.T, self.w_h.weight.T, x.new_zeros(H, M * d)], 1),
            torch.cat([self.e_m.weight.T, x.new_zeros(M * d, H), torch.block_diag(*[self.A_bar.T] * M)], 1)])
        b_mat = torch.block_diag(*[self.B_bar[None]] * M)  # s_u (B, M) @ b_mat = B_bar s_u,k for every k
        spikes["u"], spikes["m"], spikes["h"], cell_mem = cell_sequence(
            drive, w_rec, b_mat, self.w_m.weight.T, (self._law("u"), self._law("m"), self._law("h")), (M, H, M * d))
        mems["u"], mems["h"], mems["m"] = cell_mem.split([M, H, M * d], -1)
        fire("out", self.out(spikes["h"]))  # I_o = W_o s_h[t] + b_o
        return ({pop: spikes[pop].transpose(0, 1) for pop in POPULATIONS},
                {pop: mems[pop].transpose(0, 1) for pop in POPULATIONS})

    def _law(self, pop: str) -> Law:
        lif = self.lif[pop]
        alpha = lif.alpha.clamp(0, 1) if self.cfg.neuron == "synaptic" else None
        return Law(lif.beta.clamp(0, 1), lif.threshold, alpha, lif.spike_grad)

    def _noise(self, pop: str, current: torch.Tensor) -> torch.Tensor:
        return torch.randn_like(current) * (self.cfg.current_noise * self.cfg.neuron_params[pop][1])

    def _noisy(self, pop: str, current: torch.Tensor) -> torch.Tensor:
        """Training noise on input currents (as `_fire` adds it), for robustness to int8 rounding."""
        return current + self._noise(pop, current) if self.training and self.cfg.current_noise > 0 else current

    def weights(self) -> dict[str, torch.Tensor]:
        """The tensors that define this model (trainable weights and the frozen A_bar, B_bar)."""
        keep = {name for name, _ in self.named_parameters()} | {"A_bar", "B_bar"}
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items() if k in keep}

    def parameter_count(self) -> int:
        """torch's own count of trainable values; tests/test_network.py checks it against training/network.py."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fan_out(self) -> dict[str, tuple[int, int]]:
        """Synapses driven by one spike of each population: (at the same step, at the next step)."""
        return describe(self.cfg).fan_out()


def step_loop(model: L2MU, x: torch.Tensor) -> tuple[torch.Tensor, list[State]]:
    """The reference window forward: `step` looped over x (B, T, 6) from the zero state; spike counts (B, C) and
    the state after every step. `run` must agree with it (tests/test_fast_step.py, bench/epoch_speed.py)."""
    state, states = model.initial_state(x.shape[0]), []
    counts = x.new_zeros(x.shape[0], model.cfg.n_classes)
    for t in range(x.shape[1]):
        s_o, state = model.step(x[:, t], state)
        counts = counts + s_o
        states.append(state)
    return counts, states


def numpy_weights(model: L2MU) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model.weights().items()}
