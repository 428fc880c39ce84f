"""Peer (d): the L2MU paper's own deployment style. The fold's float L2MU (the same weights as the torch row) is
exported as one whole-window graph with torch.onnx.export and run window by window with ONNX Runtime (one thread).
The exporter unrolls the 40 time steps into one graph."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from bench.contender import Contender, Workload
from bench.protocol import WINDOW, Fold, Settings
from deploy.opcount import step_ops
from training.atomic import atomic_path
from training.run_dir import open_run

OPSET = 17


def export(model, path: Path) -> None:
    """The whole-window forward (x (1, T, 6) -> spike counts (1, C)) as ONNX with the TorchScript-based exporter,
    the one of the paper's time. Checked once on a trained fold model: the dynamo exporter gives identical outputs
    and the same ONNX Runtime latency per window (1.1-1.2 ms, one thread), but takes 47 s instead of 4 s and
    writes 2.3 MB instead of 0.5 MB."""
    import torch

    from training.l2mu import step_loop

    class StepLoopWindow(torch.nn.Module):
        """The reference forward (`step` looped over the window): the fused training forward's custom autograd
        functions and block-diagonal products do not export to ONNX."""

        def __init__(self) -> None:
            super().__init__()
            self.l2mu = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return step_loop(self.l2mu, x)[0]

    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and snnTorch's tracer warnings
        torch.onnx.export(StepLoopWindow().eval(), (torch.zeros(1, WINDOW, 6),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["counts"])


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def contender(fold: Fold, settings: Settings) -> Contender:
    import onnx

    from training.checkpoint import load_model

    run = open_run(fold.l2mu_run)
    path = fold.workdir / "l2mu_window.onnx"
    export(load_model(run), path)
    nodes = len(onnx.load(str(path)).graph.node)
    ort_session = session(path)

    def decide(z: np.ndarray) -> int:
        return int(np.argmax(ort_session.run(None, {"x": z[None].astype(np.float32)})[0][0]))

    step = step_ops(run.config["model"])
    workload = Workload(step["macs"] * WINDOW, step["elementwise"] * WINDOW, ops=nodes, invocations=1)
    return Contender(
        "onnx_l2mu", "L2MU float, whole window (paper style)", ours=False, runtime="ONNX Runtime",
        format="float32 .onnx", decide=decide, predict=lambda zs: np.array([decide(z) for z in zs]),
        params=run.metrics["model"]["params"], model_bytes=path.stat().st_size, arena_bytes=None,
        macs=workload.macs, acs=None, dense_macs=workload.macs, workload=workload,
        notes=[f"torch.onnx.export (TorchScript exporter, opset {OPSET}): {nodes:,} nodes for {WINDOW} unrolled "
               "steps; float32 run densely, so its MACs are those of the layer shapes; TFLM cannot run it; device "
               "estimates use the profile's int8 constants (a lower bound for float kernels)"])
