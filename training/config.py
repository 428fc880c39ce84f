"""All hyperparameters of one model in one object, saved beside the weights as JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NEURONS = ("leaky", "synaptic")
POPULATIONS = ("channel", "encoder", "decoder", "u", "m", "h", "out")

# (beta, threshold) per population. u, m, h, out: the authors' best L2MU (docs/l2mu.md, "Default neuron constants");
# the encoder values are unconfirmed upstream and were chosen here.
DEFAULT_NEURON_PARAMS = {
    "channel": (0.70, 0.50),
    "encoder": (0.70, 0.50),
    "decoder": (0.70, 0.50),
    "u": (0.80, 0.20),
    "m": (0.20, 0.40),
    "h": (0.45, 0.65),
    "out": (0.60, 0.15),
}


@dataclass(frozen=True)
class L2MUConfig:
    """Sizes follow docs/l2mu.md: P per-channel population, E encoder, O encoder output (= cell input n),
    M memory channels, d Legendre order, theta window in steps, H hidden, C classes."""

    n_classes: int
    neuron: str = "leaky"
    channels: int = 6
    pop_per_channel: int = 8
    encoder_size: int = 32
    encoder_out: int = 32
    memory_size: int = 16
    order: int = 4
    theta: float = 10.0
    hidden_size: int = 64
    neuron_params: dict = field(default_factory=lambda: dict(DEFAULT_NEURON_PARAMS))
    alpha: float = 0.5  # synaptic current decay, Synaptic variant only
    current_noise: float = 0.0  # training only: Gaussian noise on every input current, std = this x threshold
    learn_neuron_params: bool = True  # learn one beta and one threshold per population (starting from neuron_params)

    def __post_init__(self) -> None:
        if self.neuron not in NEURONS:
            raise ValueError(f"neuron must be one of {NEURONS}, got {self.neuron!r}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        for name in ("pop_per_channel", "encoder_size", "encoder_out", "memory_size", "order", "hidden_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.theta <= 0:
            raise ValueError(f"theta must be positive (in steps), got {self.theta}")
        missing = set(POPULATIONS) - set(self.neuron_params)
        if missing:
            raise ValueError(f"neuron_params lacks populations {sorted(missing)}")
        for pop, (beta, thr) in self.neuron_params.items():
            if not 0.0 <= beta <= 1.0 or thr <= 0:
                raise ValueError(f"population {pop!r}: beta must be in [0, 1] and threshold > 0, got ({beta}, {thr})")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["neuron_params"] = {k: list(v) for k, v in self.neuron_params.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> L2MUConfig:
        d = dict(d)
        d["neuron_params"] = {k: tuple(v) for k, v in d.get("neuron_params", DEFAULT_NEURON_PARAMS).items()}
        return cls(**d)

    def population_sizes(self) -> dict[str, int]:
        return {
            "channel": self.channels * self.pop_per_channel,
            "encoder": self.encoder_size,
            "decoder": self.encoder_out,
            "u": self.memory_size,
            "m": self.memory_size * self.order,
            "h": self.hidden_size,
            "out": self.n_classes,
        }
