"""Saving and safely loading L2MU weights (safetensors: tensors only, nothing executable)."""

from __future__ import annotations

from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from training.atomic import atomic_path
from training.config import L2MUConfig
from training.errors import HarError
from training.l2mu import L2MU
from training.run_dir import WEIGHTS, Run


def save_weights(model: L2MU, path: Path) -> None:
    with atomic_path(path) as tmp:
        save_file(model.weights(), str(tmp))


def load_model(run: Run, weights_file: str = WEIGHTS) -> L2MU:
    """Rebuild the model from the run's config and load its weights; a corrupt file gives a HarError."""
    model = L2MU(L2MUConfig.from_dict(run.config["model"]))
    try:
        tensors = load_file(str(run.path / weights_file))
    except (OSError, SafetensorError) as exc:
        raise HarError(f"cannot load weights {run.path / weights_file}: {exc}") from None
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    expected = set(model.weights())
    if expected & set(missing) or unexpected:
        raise HarError(f"weights in {run.path / weights_file} do not match the config: "
                       f"missing {sorted(expected & set(missing))}, unexpected {sorted(unexpected)}")
    return model.eval()
