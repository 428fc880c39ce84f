"""`har train` as a library call: data -> windows -> split -> fit -> evaluate -> run directory. Compression runs
after training, outside training/ (har_app/train_job.py)."""

from __future__ import annotations

import os
import platform
import random
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from training.atomic import write_text
from training.errors import ExitCode, HarError
from training.metrics import HeldOutMetrics, classification_metrics, workload_metrics
from training.normalization import Normalization
from training.run_dir import (CONFIG, CONFUSION_PLOT, CURVES_PLOT, HISTORY, METRICS, MODEL_CARD, NORMALIZATION, RASTER_PLOT,
                              WEIGHTS, new_run_dir, write_json)
from training.run_metrics import (CrossValidation, DatasetSummary, FoldResult, ModelSummary, RunMetrics, Stages,
                                  TrainingSummary)
from training.sources import DEFAULT_DATA, load_dataset
from training.splits import SubjectSplit, holdout_split, kfold_splits
from training.train_config import TrainConfig
from training.validate import TRAIN_OPTIONS, check_folder, check_options
from training.windowing import Windows, make_windows


@dataclass
class TrainRequest:
    data: str = DEFAULT_DATA
    activities: list[str] | None = None
    subjects: list[str] | None = None  # use only these subjects (small experiments, tests)
    fs_hz: float = 20.0
    window: int = 40
    hop: int = 20
    cv: int = 0
    test_subjects: list[str] | None = None
    val_subjects: list[str] | None = None
    model: dict = field(default_factory=dict)  # L2MUConfig overrides, e.g. {"neuron": "synaptic"}
    epochs: int = TrainConfig.epochs
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    patience: int = TrainConfig.patience
    seed: int = TrainConfig.seed
    augment_deg: float = TrainConfig.augment_deg
    runs_dir: Path = Path("runs")
    name: str = "l2mu"
    # the compression after training (har_app/train_job.py, deploy/compress.py); checked here with the rest
    compress: str = "none"
    sparsity: float = 0.5
    finetune_epochs: int = 12
    calibration_windows: int = 128
    stream: bool = False  # one state through each stream, a decision every hop (training/streaming.py)
    stream_settings: dict = field(default_factory=dict)  # StreamSettings overrides


def seed_everything(seed: int) -> None:
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def new_model(n_classes: int, settings: dict):
    """A fresh L2MU for `n_classes` from the request's model settings; a bad setting is one clear error."""
    from training.config import L2MUConfig
    from training.l2mu import L2MU

    try:
        return L2MU(L2MUConfig(n_classes=n_classes, **settings))
    except (TypeError, ValueError) as exc:
        raise HarError(f"bad model setting: {exc}") from None


def _versions() -> dict:
    import snntorch
    import torch

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"python": platform.python_version(), "torch": torch.__version__, "snntorch": snntorch.__version__,
            "numpy": np.__version__, "har_git_commit": commit or None}


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.fields[status]}"), console=console, transient=False)


def train_fold(req: TrainRequest, windows: Windows, split: SubjectSplit, classes: list[str], label: str,
               console: Console, on_best=None):
    """Fit one model on split.train (early stop on split.val); returns (model, norm, history, test windows)."""
    from training.loop import fit

    train, val, test = (windows.of_subjects(s) for s in (split.train, split.val, split.test))
    if min(len(train), len(val), len(test)) == 0:
        raise HarError(f"{label}: a split has no windows (train {len(train)}, val {len(val)}, test {len(test)})")
    norm = Normalization.fit(train.x)
    seed_everything(req.seed)
    model = new_model(len(classes), req.model)
    tcfg = TrainConfig(req.epochs, req.batch_size, req.lr, req.patience, req.seed, req.augment_deg)
    with _progress(console) as progress:
        task = progress.add_task(label, total=req.epochs, status="")

        def on_epoch(r: dict) -> None:
            progress.update(task, advance=1, status=f"loss {r['train_loss']:.3f}  val acc {r['val_accuracy']:.3f}")

        history = fit(model, train, val, norm, tcfg, on_epoch, on_best or (lambda m: None))
    return model, norm, history, tcfg, Windows(norm.apply(test.x), test.y, test.subjects)


def evaluate(model, test: Windows, classes: list[str]) -> tuple[HeldOutMetrics, dict]:
    """Classification and workload metrics on test windows; also the recorded spikes of the first window."""
    import torch

    counts, spikes = [], {}
    with torch.no_grad():
        for i in range(0, len(test), 512):
            c, rec = model.run(torch.from_numpy(test.x[i : i + 512]), record=True)
            counts.append(c.numpy())
            for pop, s in rec.items():
                spikes.setdefault(pop, []).append(s.numpy())
    spikes = {pop: np.concatenate(v) for pop, v in spikes.items()}
    pred = np.concatenate(counts).argmax(1)
    metrics = HeldOutMetrics.of(classification_metrics(test.y, pred, classes),
                                workload_metrics(test.x, spikes, model.fan_out(), model.cfg.pop_per_channel))
    return metrics, {"label": int(test.y[0]), "spikes": {pop: s[0] for pop, s in spikes.items()}}


@dataclass
class TrainedRun:
    """A run directory holding all `har train` writes but metrics.json and the model card, with what a later stage
    needs: the windows of every subject and the split of the first fold (the kept model's)."""

    path: Path
    metrics: RunMetrics  # what metrics.json will hold; a later stage adds to `metrics.stages`
    config: dict  # config.json
    windows: Windows
    split: SubjectSplit


@contextmanager
def training_run(req: TrainRequest, console: Console) -> Iterator[TrainedRun]:
    """Train into a new run directory and yield it, so that the caller can add stages (har_app/train_job.py adds
    the compression's). When the block ends the model card and metrics.json are written, metrics.json last: then
    the run is finished (run_dir.is_trained). On any error or Ctrl-C that leaves the block the run directory is
    removed: it was created here and holds only what this run wrote."""
    from training.config import L2MUConfig
    from training.model_card import model_card

    check_options(req, TRAIN_OPTIONS)  # every number checked before any data is read or folder created
    check_folder(req.runs_dir, "--runs-dir")
    try:
        L2MUConfig(n_classes=2, **req.model)
    except (TypeError, ValueError) as exc:
        raise HarError(f"bad model setting: {exc}") from None
    dataset = load_dataset(req.data, req.activities, req.subjects)
    if dataset.skipped_lines:
        console.print(f"[yellow]skipped {dataset.skipped_lines} malformed lines in {req.data}[/]")
    present = sorted({r.label for r in dataset.recordings}, key=dataset.classes.index)
    if len(present) < 2:
        raise HarError(f"need at least two classes with data, found {len(present)}: {','.join(present) or 'none'}")
    windows = make_windows(dataset, req.fs_hz, req.window, req.hop)
    subjects = dataset.subjects
    splits = (kfold_splits(subjects, req.cv, req.seed) if req.cv else
              [holdout_split(subjects, req.seed, test=req.test_subjects, val=req.val_subjects)])
    console.print(f"{dataset.name}: {len(dataset.recordings)} recordings, {len(subjects)} subjects, "
                  f"{len(windows)} windows of {req.window} at {req.fs_hz:g} Hz, classes {', '.join(dataset.classes)}")
    run_dir = None
    try:  # the folder is made inside: a Ctrl-C right after the message above must remove it too
        run_dir = new_run_dir(req.runs_dir, req.name)
        trained = _train_into(run_dir, req, dataset, windows, splits, console)
        yield trained
        write_text(run_dir / MODEL_CARD, model_card(trained.metrics.to_json(), trained.config))
        write_json(run_dir / METRICS, trained.metrics.to_json())
    except BaseException:
        if run_dir is not None:
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written: the folder was created just above
        raise


def run_training(req: TrainRequest, console: Console) -> dict:
    """`har train` without compression: write the run directory; returns metrics.json's JSON form (what `--json`
    prints). With compression: har_app/train_job.py."""
    if req.compress != "none":
        raise ValueError(f"run_training does not compress (compress={req.compress!r}): use har_app.train_job")
    with training_run(req, console) as trained:
        pass
    return trained.metrics.to_json()


def _train_into(run_dir: Path, req: TrainRequest, dataset, windows: Windows, splits: list[SubjectSplit],
                console: Console) -> TrainedRun:
    """Train every fold, evaluate, and write the run directory's config, weights, normalisation, history, plots."""
    from training.checkpoint import save_weights
    from training.plots import plot_confusion, plot_spike_raster, plot_training_curves

    folds = []
    for i, split in enumerate(splits):
        label = f"fold {i + 1}/{len(splits)}" if req.cv else "train"
        first = i == 0
        keep_best = (lambda m: save_weights(m, run_dir / WEIGHTS)) if first else None
        if req.stream:
            from training.streaming import train_stream_fold

            model, norm, history, tcfg, test = train_stream_fold(req, dataset, windows, split, label, console, keep_best)
        else:
            model, norm, history, tcfg, test = train_fold(req, windows, split, dataset.classes, label, console,
                                                          on_best=keep_best)
        if history.best_epoch < 1:  # interrupted before this fold's first epoch ended
            if first:
                raise HarError("interrupted before the first epoch ended: nothing trained, no run directory kept",
                               ExitCode.INTERRUPTED)
            console.print("[yellow]interrupted: keeping the folds finished so far[/]")
            break
        if req.stream:
            from training.streaming import evaluate_stream

            metrics, raster = evaluate_stream(model, test, norm, dataset.classes, req.window, req.hop)
        else:
            metrics, raster = evaluate(model, test, dataset.classes)
        folds.append(FoldResult(test_subjects=split.test, accuracy=metrics.accuracy, macro_f1=metrics.macro_f1,
                                best_epoch=history.best_epoch, interrupted=history.interrupted))
        if first:
            saved = (model, norm, history, tcfg, split, metrics, raster)
        if history.interrupted:
            console.print("[yellow]interrupted: keeping the best checkpoint so far[/]")
            break
    model, norm, history, tcfg, split, metrics, raster = saved
    config = {
        "model": model.cfg.to_dict(),
        "train": tcfg.to_dict(),
        "data": {"spec": req.data, "name": dataset.name, "classes": dataset.classes, "fs_hz": req.fs_hz,
                 "source_fs_hz": dataset.fs_hz if np.isfinite(dataset.fs_hz) else "mixed",
                 "window": req.window, "hop": req.hop, "activities": req.activities, "subjects": req.subjects,
                 "stream": req.stream,
                 "skipped_lines": dataset.skipped_lines},
        "split": split.to_dict(),
        "versions": _versions(),
    }
    if req.stream:
        from training.streaming import StreamSettings

        config["stream_settings"] = StreamSettings(**req.stream_settings).to_dict()
    write_json(run_dir / CONFIG, config)
    save_weights(model, run_dir / WEIGHTS)
    norm.save(run_dir / NORMALIZATION)
    cv = None
    if req.cv:
        acc, f1 = np.array([f.accuracy for f in folds]), np.array([f.macro_f1 for f in folds])
        cv = CrossValidation(k=req.cv, folds_run=len(folds), accuracy_mean=float(acc.mean()),
                             accuracy_std=float(acc.std()), macro_f1_mean=float(f1.mean()),
                             macro_f1_std=float(f1.std()), folds=folds)
    result = RunMetrics(
        run_dir=str(run_dir),
        dataset=DatasetSummary(name=dataset.name, classes=dataset.classes, fs_hz=req.fs_hz, window=req.window,
                               hop=req.hop, test_subjects=split.test, skipped_lines=dataset.skipped_lines),
        model=ModelSummary(neuron=model.cfg.neuron, params=model.parameter_count()),
        training=TrainingSummary(epochs_run=len(history.epochs), best_epoch=history.best_epoch,
                                 best_val_accuracy=history.best_val_accuracy, interrupted=history.interrupted,
                                 early_stopped=history.early_stopped),
        stages=Stages(float=metrics),
        cv=cv,
    )
    write_json(run_dir / HISTORY, {"epochs": history.epochs, "best_epoch": history.best_epoch})
    plot_confusion(metrics.confusion_matrix, dataset.classes, run_dir / CONFUSION_PLOT,
                   f"L2MU float, test subjects {','.join(split.test)}: accuracy {metrics.accuracy:.3f}")
    plot_training_curves(history.epochs, history.best_epoch, run_dir / CURVES_PLOT)
    plot_spike_raster(raster["spikes"], f"spike raster of one test window (true class {dataset.classes[raster['label']]})",
                      run_dir / RASTER_PLOT)
    return TrainedRun(run_dir, result, config, windows, split)
