"""The L2MU: a Legendre Memory Unit whose every population is a population of LIF neurons (l2mu.md section 2).

One function, `step`, advances the network by one sensor sample. The window forward loops over it,
so training, export and streaming share one definition.
"""

from __future__ import annotations

import math

import numpy as np
import snntorch as snn
import torch
from torch import nn

from training.config import POPULATIONS, L2MUConfig
from training.l2mu_layout import MODEL_CHANNEL_ORDER
from training.legendre import zoh_legendre

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
        sizes = self.cfg.population_sizes()
        kinds = ("mem", "syn", "spk") if self.cfg.neuron == "synaptic" else ("mem", "spk")
        z = self.channel_weight.new_zeros
        return {f"{kind}_{pop}": z(batch, n) for pop, n in sizes.items() for kind in kinds}

    def _fire(self, pop: str, current: torch.Tensor, state: State, new: State) -> torch.Tensor:
        lif = self.lif[pop]
        if self.training and self.cfg.current_noise > 0:  # robustness to int8 rounding of membranes
            current = current + torch.randn_like(current) * (self.cfg.current_noise * self.cfg.neuron_params[pop][1])
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
        """Loop `step` over a window from the zero state; with `record`, also every population's spikes (B, T, N)."""
        state = self.initial_state(x.shape[0])
        counts = torch.zeros(x.shape[0], self.cfg.n_classes, device=x.device)
        trace: dict[str, list[torch.Tensor]] = {pop: [] for pop in POPULATIONS}
        for t in range(x.shape[1]):
            s_o, state = self.step(x[:, t], state)
            counts = counts + s_o
            if record:
                for pop in POPULATIONS:
                    trace[pop].append(state[f"spk_{pop}"].detach())
        return counts, ({pop: torch.stack(v, 1) for pop, v in trace.items()} if record else {})

    def weights(self) -> dict[str, torch.Tensor]:
        """The tensors that define this model (trainable weights and the frozen A_bar, B_bar)."""
        keep = {name for name, _ in self.named_parameters()} | {"A_bar", "B_bar"}
        return {k: v.detach().clone().contiguous() for k, v in self.state_dict().items() if k in keep}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def fan_out(self) -> dict[str, tuple[int, int]]:
        """Synapses driven by one spike of each population: (at the same step, at the next step)."""
        c = self.cfg
        M, d, H = c.memory_size, c.order, c.hidden_size
        return {
            "channel": (c.encoder_size, 0),
            "encoder": (c.encoder_out, 0),
            "decoder": (M + H, 0),  # E_x, W_x
            "u": (d, 0),  # B_bar
            "m": (H, M + d),  # W_m now; E_m and A_bar next step
            "h": (c.n_classes, M + H),  # W_o now; E_h and W_h next step
            "out": (0, 0),
        }


def numpy_weights(model: L2MU) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model.weights().items()}
