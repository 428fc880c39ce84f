"""A real L2MU int8 step model without training one: the graph `har train --compress int8` writes (deploy/tf_twin.py
`StepModule`, converted full-int8 by deploy/convert.py with the `step` and `zero_state` signatures) for a seeded,
untrained L2MU, and that L2MU in torch as the float reference.

An untrained seeded model's output population fires only a few times per window; its output weights W_o are
doubled so that every window has output spikes, which the live backends' state tests need to see a state at all
(a tiny trained run can end as a silent or constant predictor on some seeds). Used by tests/test_live_backends.py,
bench/live_latency.py --fixture and bench/fuzz_ble.py.
"""

from __future__ import annotations

import numpy as np

from training.run_config import load_run_config
from training.search_space import UNTUNED

# The tests' tiny model: the untuned configuration's layout and neuron constants at H = 16, M = 8, so the parity and
# deployment tests keep the firing they were written against whatever the tuned default of `har train` becomes.
SMALL = {**load_run_config(UNTUNED).model, "hidden_size": 16, "memory_size": 8}


def seeded_l2mu(n_classes: int, seed: int = 0, **sizes):
    """An untrained L2MU (torch) from `seed`, its output weights doubled; eval mode."""
    import torch

    from training.config import L2MUConfig
    from training.l2mu import L2MU

    torch.manual_seed(seed)
    model = L2MU(L2MUConfig(n_classes=n_classes, **sizes)).eval()
    with torch.no_grad():
        model.out.weight.mul_(2.0)
    return model


def build_int8_step_model(model, calibration: np.ndarray) -> bytes:
    """The model's full-int8 .tflite step; calibration (N, T, 6) normalised windows, fed in time order."""
    from deploy.convert import convert_step
    from deploy.tf_twin import StepModule
    from training.l2mu import numpy_weights

    return convert_step(StepModule(model.cfg, numpy_weights(model)), calibration)


def reference_spikes(model, x: np.ndarray) -> np.ndarray:
    """Output spikes (T, C) of the float model over x (T, 6) from the zero state."""
    import torch

    with torch.no_grad():
        return model.trace(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0]["out"][0].numpy()
