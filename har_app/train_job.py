"""`har train` as one job: training (training/pipeline.py), then the compression `--compress` asks for
(deploy/compress.py) on the finished float model, before metrics.json is written. Training never imports deploy/."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console

from training.errors import HarError
from training.pipeline import TrainRequest, training_run


def run_train_job(req: TrainRequest, console: Console) -> dict:
    """Train, compress, and write the run directory; returns metrics.json's JSON form (what `--json` prints).
    Ctrl-C or a failed check during compression keeps the float run (its metrics without compression stages; a
    failed check is then raised, naming the kept run); any other failure removes the run directory."""
    failed = None
    with training_run(req, console) as trained:
        if req.compress != "none":
            from deploy.compress import compress_run

            try:
                stages = compress_run(trained.path, trained.windows, trained.split, req, console)
                trained.metrics.stages = replace(trained.metrics.stages, **stages)
            except KeyboardInterrupt:
                console.print("[yellow]interrupted during compression: the float model is kept[/]")
            except HarError as exc:
                failed = exc
    if failed is not None:
        raise HarError(f"{failed}; compression stopped, the trained float model is kept in {trained.path}",
                       failed.exit_code) from None
    return trained.metrics.to_json()
