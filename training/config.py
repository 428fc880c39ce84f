"""All hyperparameters of one model in one object, saved beside the weights as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from training.errors import BadValue
from training.network import POPULATIONS, population_sizes
from training.validate import NON_NEGATIVE, Rule, is_kind, number_in, one_of, require

NEURONS = ("leaky", "synaptic")
COUNT = Rule(int, lambda v: v >= 1, ">= 1")  # a population or memory size

# (beta, threshold) per population, the starting values of the learned ones: the tuned default, trial 41 of the
# 201-trial `har tune` study of docs/tuning.md ("The tuned default"). The authors' Braille constants that `har train`
# used before it are in training/configs/untuned.toml (docs/l2mu.md, "Default neuron constants").
DEFAULT_NEURON_PARAMS = {
    "channel": (0.10, 0.10),
    "encoder": (0.45, 0.40),
    "decoder": (0.50, 0.45),
    "u": (0.25, 0.15),
    "m": (0.40, 0.50),
    "h": (0.20, 0.65),
    "out": (0.40, 0.75),
}


@dataclass(frozen=True)
class L2MUConfig:
    """Sizes follow docs/l2mu.md: P per-channel population, E encoder, O encoder output (= cell input n),
    M memory channels, d Legendre order, theta window in steps, H hidden, C classes."""

    n_classes: int
    # the sizes of the tuned default (docs/tuning.md, "The tuned default"); before it: training/configs/untuned.toml
    neuron: str = "leaky"
    channels: int = 6
    pop_per_channel: int = 4
    encoder_size: int = 64
    encoder_out: int = 64
    memory_size: int = 16
    order: int = 6
    theta: float = 5.83
    hidden_size: int = 112
    neuron_params: dict = field(default_factory=lambda: dict(DEFAULT_NEURON_PARAMS))
    alpha: float = 0.5  # synaptic current decay, Synaptic variant only
    current_noise: float = 0.0  # training only: Gaussian noise on every input current, std = this x threshold
    learn_neuron_params: bool = True  # learn one beta and one threshold per population (starting from neuron_params)

    def __post_init__(self) -> None:
        require(self.neuron, one_of(NEURONS), "neuron")
        require(self.n_classes, Rule(int, lambda v: v >= 2, ">= 2"), "n_classes")
        for name in ("channels", "pop_per_channel", "encoder_size", "encoder_out", "memory_size", "order",
                     "hidden_size"):
            require(getattr(self, name), COUNT, name)
        require(self.theta, Rule(float, lambda v: v > 0, "positive (in steps)"), "theta")
        require(self.alpha, number_in(0.0, 1.0, "in [0, 1]"), "alpha")
        require(self.current_noise, NON_NEGATIVE, "current_noise")
        require(self.learn_neuron_params, Rule(bool, lambda v: True, "true or false"), "learn_neuron_params")
        if not isinstance(self.neuron_params, dict):
            raise BadValue(f"neuron_params must be a mapping of population to (beta, threshold), "
                           f"got {self.neuron_params!r}")
        missing = set(POPULATIONS) - set(self.neuron_params)
        if missing:
            raise BadValue(f"neuron_params lacks populations {sorted(missing)}")
        for pop, pair in self.neuron_params.items():
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and is_kind(pair[0], float)
                    and is_kind(pair[1], float) and 0.0 <= pair[0] <= 1.0 and pair[1] > 0):
                raise BadValue(f"population {pop!r}: beta must be in [0, 1] and threshold > 0, got {pair!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neuron_params"] = {k: list(v) for k, v in self.neuron_params.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> L2MUConfig:
        d = dict(d)
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown or "n_classes" not in d:
            raise BadValue(f"unknown fields {', '.join(unknown)}" if unknown else "missing field n_classes")
        params = d.get("neuron_params", DEFAULT_NEURON_PARAMS)
        if isinstance(params, dict):
            d["neuron_params"] = {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}
        return cls(**d)

    def population_sizes(self) -> dict[str, int]:
        """Neurons per population, in step order (training/network.py)."""
        return population_sizes(self)
