"""The one description of the L2MU's structure (docs/l2mu.md, "The network description"): its populations in step
order with their sizes, and every weight matrix as a synapse from a source population (or the input x) into a
target population. The torch model's state and fan-out, the TF twin's layer list, the op counts and the integer
model's projections are derived from it; the maths of a step stays written as equations (training/l2mu.py).
No torch import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from training.config import L2MUConfig

INPUT = "x"  # the sensor sample, one value per input channel

# Population sizes in step order (docs/l2mu.md, "Populations, one time step").
SIZES: dict[str, Callable[[L2MUConfig], int]] = {
    "channel": lambda c: c.channels * c.pop_per_channel,  # P neurons per input channel
    "encoder": lambda c: c.encoder_size,  # E
    "decoder": lambda c: c.encoder_out,  # O: s_in, the cell's input
    "u": lambda c: c.memory_size,  # M
    "m": lambda c: c.memory_size * c.order,  # d Legendre coefficients per memory channel
    "h": lambda c: c.hidden_size,  # H
    "out": lambda c: c.n_classes,  # C
}
POPULATIONS = tuple(SIZES)

Form = Literal["dense", "per_input", "per_memory_channel"]


@dataclass(frozen=True)
class Synapse:
    """One weight matrix W adding W s_source to the target's input current.

    Forms (the shape rule is `Network.shape`):
    - "dense": W (target size, source size), the torch nn.Linear `name` ("<name>.weight", "<name>.bias");
    - "per_input": I_c = w_c x_c + b_c, each input channel c driving its P target neurons through one gain each,
      stored (channels, P) as the torch parameters "<name>_weight" and "<name>_bias";
    - "per_memory_channel": one (d, .) block acting on each of the M memory channels, I_m,k += block s_k, stored once
      as the torch buffer `name`.
    """

    name: str  # the torch attribute
    source: str  # a population, or INPUT
    target: str
    delay: int  # 0: the source's spikes of the same step; 1: of the previous step
    bias: bool
    trained: bool = True
    form: Form = "dense"
    vector: bool = False  # stored as a (rows,) vector: a one-column block (B_bar)
    fused_as: str | None = None  # one product with the other synapses of this name, over their stacked sources

    @property
    def weight_key(self) -> str:
        return {"dense": f"{self.name}.weight", "per_input": f"{self.name}_weight"}.get(self.form, self.name)

    @property
    def bias_key(self) -> str:
        return f"{self.name}.bias" if self.form == "dense" else f"{self.name}_bias"

    @property
    def product(self) -> str:
        """The name of the matrix product this synapse is computed in."""
        return self.fused_as or self.name


# Every weight matrix, in the order a step computes them (training/l2mu.py `step`).
SYNAPSES = (
    Synapse("channel", INPUT, "channel", 0, bias=True, form="per_input"),  # I_c = w_c x_c + b_c
    Synapse("encoder", "channel", "encoder", 0, bias=True),
    Synapse("decoder", "encoder", "decoder", 0, bias=True),
    # I_u = E_x s_in[t] + E_h s_h[t-1] + E_m s_m[t-1]
    Synapse("e_x", "decoder", "u", 0, bias=False),
    Synapse("e_h", "h", "u", 1, bias=False),
    Synapse("e_m", "m", "u", 1, bias=False),
    # I_m,k = A_bar s_m,k[t-1] + B_bar s_u,k[t] = [A_bar B_bar] [s_m,k[t-1]; s_u,k[t]]: frozen, shared by the M channels
    Synapse("A_bar", "m", "m", 1, bias=False, trained=False, form="per_memory_channel", fused_as="a_b_bar"),
    Synapse("B_bar", "u", "m", 0, bias=False, trained=False, form="per_memory_channel", vector=True, fused_as="a_b_bar"),
    # I_h = W_x s_in[t] + W_h s_h[t-1] + W_m s_m[t]
    Synapse("w_x", "decoder", "h", 0, bias=False),
    Synapse("w_h", "h", "h", 1, bias=False),
    Synapse("w_m", "m", "h", 0, bias=False),
    Synapse("out", "h", "out", 0, bias=True),  # I_o = W_o s_h[t] + b_o
)


@dataclass(frozen=True)
class Population:
    name: str
    size: int


@dataclass(frozen=True)
class Network:
    neuron: str  # "leaky" or "synaptic"
    inputs: int  # input channels: the size of x
    memory_channels: int  # M: the blocks of a per-memory-channel synapse
    populations: tuple[Population, ...]  # in step order
    synapses: tuple[Synapse, ...]  # in step order
    neuron_constants: tuple[str, ...]  # learned per population ("lif.<pop>.<constant>"); empty when fixed

    def sizes(self) -> dict[str, int]:
        return {p.name: p.size for p in self.populations}

    def size(self, name: str) -> int:
        return self.inputs if name == INPUT else self.sizes()[name]

    def synapse(self, name: str) -> Synapse:
        return next(s for s in self.synapses if s.name == name)

    def shape(self, s: Synapse) -> tuple[int, int]:
        """(rows, cols) of the stored matrix: dense (target, source); per input (channels, P); per memory channel
        one block (target / M, source / M)."""
        target, source = self.size(s.target), self.size(s.source)
        if s.form == "per_input":
            return source, target // source
        if s.form == "per_memory_channel":
            return target // self.memory_channels, source // self.memory_channels
        return target, source

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every stored tensor (L2MU.weights()): weights, biases, frozen blocks and the learned neuron constants."""
        out: dict[str, tuple[int, ...]] = {}
        for s in self.synapses:
            rows, cols = self.shape(s)
            out[s.weight_key] = (rows,) if s.vector else (rows, cols)
            if s.bias:
                out[s.bias_key] = self._bias_shape(s)
        return out | {f"lif.{p.name}.{c}": () for p in self.populations for c in self.neuron_constants}

    def _bias_shape(self, s: Synapse) -> tuple[int, ...]:
        return self.shape(s) if s.form == "per_input" else (self.size(s.target),)

    def macs(self, s: Synapse) -> int:
        """Multiply-accumulates of one step: rows x cols, once per memory channel for a shared block."""
        return prod(self.shape(s)) * (self.memory_channels if s.form == "per_memory_channel" else 1)

    def products(self) -> dict[str, tuple[Synapse, ...]]:
        """The matrix products of one step, in step order: one per synapse, A_bar and B_bar together."""
        out: dict[str, tuple[Synapse, ...]] = {}
        for s in self.synapses:
            out[s.product] = out.get(s.product, ()) + (s,)
        return out

    def bias_count(self) -> int:
        return sum(prod(self._bias_shape(s)) for s in self.synapses if s.bias)

    def parameter_count(self) -> int:
        """Trained weights and biases, plus the learned neuron constants; A_bar, B_bar are fixed."""
        weights = sum(prod(self.shape(s)) for s in self.synapses if s.trained)
        biases = sum(prod(self._bias_shape(s)) for s in self.synapses if s.trained and s.bias)
        return weights + biases + len(self.populations) * len(self.neuron_constants)

    def fan_out(self) -> dict[str, tuple[int, int]]:
        """Synapses driven by one spike of each population: (at the same step, at the next step). A spike of a source
        neuron reaches one column of the matrix: its rows (of its own memory channel's block for a shared block)."""
        out = {p.name: [0, 0] for p in self.populations}
        for s in self.synapses:
            if s.source != INPUT:
                out[s.source][s.delay] += self.shape(s)[0]
        return {pop: (now, nxt) for pop, (now, nxt) in out.items()}

    def fed_back(self) -> tuple[str, ...]:
        """Populations whose previous step's spikes drive a synapse (h and m)."""
        return tuple(p.name for p in self.populations if any(s.source == p.name and s.delay == 1 for s in self.synapses))

    def state(self, spikes: bool) -> dict[str, int]:
        """State variable -> size: the membrane "mem_<pop>" of every population, its synaptic current "syn_<pop>" for
        Synaptic neurons, and with `spikes` its spikes "spk_<pop>"."""
        kinds = ("mem",) + (("syn",) if self.neuron == "synaptic" else ()) + (("spk",) if spikes else ())
        return {f"{kind}_{p.name}": p.size for p in self.populations for kind in kinds}


def population_sizes(cfg: L2MUConfig) -> dict[str, int]:
    return {pop: size(cfg) for pop, size in SIZES.items()}


def describe(cfg: L2MUConfig) -> Network:
    learned = ("beta", "threshold") + (("alpha",) if cfg.neuron == "synaptic" else ())
    return Network(cfg.neuron, cfg.channels, cfg.memory_size,
                   tuple(Population(pop, n) for pop, n in population_sizes(cfg).items()), SYNAPSES,
                   learned if cfg.learn_neuron_params else ())
