"""Step models for live inference: one lane = one copy of the network state, advanced one sample per step.

`TorchStep` runs the float model of the run (torch imported only when chosen); `LiteRTStep`
(deploy.step_runtimes) runs the int8 step model `model_int8.tflite` of the run-directory contract, one LiteRT
interpreter per lane, reset through the model's `zero_state` signature; `native` runs the integer L2MU on the C
engine (deploy/integer, docs/integer-engine.md) built with the system C compiler, one state struct per lane.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from deploy.step_runtimes import LiteRTStep
from training.errors import ExitCode, HarError
from training.run_dir import INT8_MODEL, Run

BACKENDS = ("litert", "torch", "native")


class StepModel(Protocol):
    def reset(self) -> None:
        """Back to the zero state (a window start)."""

    def step(self, z: np.ndarray) -> np.ndarray:
        """Advance by one normalised sample z (6,) in loader channel order; return the output spikes (C,)."""


class TorchStep:
    """The float L2MU of the run, one state per lane (the model's weights are shared between lanes)."""

    def __init__(self, model) -> None:
        import torch

        self.torch, self.model = torch, model
        self.reset()

    def reset(self) -> None:
        self.state = self.model.initial_state(1)

    def step(self, z: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            spikes, self.state = self.model.step(self.torch.from_numpy(np.asarray(z, np.float32)[None]), self.state)
        return spikes[0].numpy()


def choose_backend(run: Run, requested: str | None, say: Callable[[str], None]) -> str:
    """By default the integer C engine when the run has its integer stage and a C compiler is here (the engine is
    built on first use, docs/integer-engine.md), else litert when the run has the int8 step model, else torch (with
    a message); an explicit choice is checked."""
    from deploy.integer.host import compiler

    has_int8 = (run.path / INT8_MODEL).is_file()
    if requested is None:
        if "integer" in run.metrics.get("stages", {}) and compiler() is not None:
            return "native"
        if has_int8:
            return "litert"
        say(f"{run.path.name} has no {INT8_MODEL} (run `har train --compress int8`): using the float torch model")
        return "torch"
    if requested not in BACKENDS:
        raise HarError(f"unknown backend {requested!r}: use {' or '.join(BACKENDS)}")
    if requested == "litert" and not has_int8:
        raise HarError(f"--backend litert needs {run.path / INT8_MODEL}: run `har train --compress int8` first")
    if requested == "native" and "integer" not in run.metrics.get("stages", {}):
        say(f"{run.path.name} has no integer stage (run `har train --compress int8`): quantising its float weights")
    return requested


def open_lanes(run: Run, backend: str, lanes: int) -> list[StepModel]:
    """`lanes` independent step models of the run on the chosen backend."""
    if backend == "litert":
        model = (run.path / INT8_MODEL).read_bytes()
        steps = [LiteRTStep(model) for _ in range(lanes)]
        outputs = len(steps[0].step(np.zeros(6, np.float32)))
        steps[0].reset()
        if outputs != len(run.classes):
            raise HarError(f"{run.path / INT8_MODEL} has {outputs} outputs; this run has {len(run.classes)} classes",
                           ExitCode.FAILURE)
        return steps
    if backend == "native":
        from deploy.integer.codegen import model_sources
        from deploy.integer.host import NativeLibrary, NativeStep, build_library
        from deploy.integer.stage import integer_weights_file, load_integer_model

        model = load_integer_model(run, integer_weights_file(run))
        if model.n_classes != len(run.classes):
            raise HarError(f"{run.path}: the integer model has {model.n_classes} outputs; this run has "
                           f"{len(run.classes)} classes", ExitCode.FAILURE)
        library = NativeLibrary(build_library(model_sources(model)))
        return [NativeStep(library) for _ in range(lanes)]
    from training.checkpoint import load_model

    model = load_model(run)
    return [TorchStep(model) for _ in range(lanes)]
