"""`har`: train, compress, deploy and run the L2MU spiking activity classifier. Heavy imports stay inside commands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from har_app.console import cli_errors, csv_list, err, out, print_json

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Spiking (L2MU) activity recognition for smartwatch IMU data, from training to edge devices.")


@app.callback()
def _group() -> None:
    """Spiking (L2MU) activity recognition for smartwatch IMU data, from training to edge devices."""


class Neuron(str, Enum):
    leaky = "leaky"
    synaptic = "synaptic"


class Compress(str, Enum):
    none = "none"
    prune = "prune"
    int8 = "int8"


@app.command()
@cli_errors
def train(
    data: str = typer.Option("seglearn", help="seglearn (bundled real watch data), wisdm:PATH or csv:DIR."),
    activities: str = typer.Option(None, help="Comma-separated classes; WISDM codes (default P,O,F,Q,R,G,S)."),
    subjects: str = typer.Option(None, help="Use only these subjects (comma-separated ids)."),
    rate: float = typer.Option(20.0, help="Model rate in Hz; every source is resampled to it."),
    window: int = typer.Option(40, help="Window length in samples at the model rate."),
    hop: int = typer.Option(20, help="Hop between windows in samples (also the live decision interval)."),
    neuron: Neuron = typer.Option(Neuron.leaky, help="LIF law: leaky or synaptic (current-based)."),
    hidden: int = typer.Option(64, help="Hidden population size H."),
    memory: int = typer.Option(16, help="Memory channels M."),
    order: int = typer.Option(4, help="Legendre order d."),
    theta: float = typer.Option(10.0, help="LMU window theta in steps."),
    epochs: int = typer.Option(60, help="Maximum epochs."),
    batch_size: int = typer.Option(128, help="Batch size."),
    lr: float = typer.Option(2e-3, help="Adam learning rate."),
    patience: int = typer.Option(12, help="Early stop after this many epochs without better validation accuracy."),
    seed: int = typer.Option(42, help="One seed for data split, init and shuffling."),
    cv: int = typer.Option(0, help="Subject-grouped K-fold cross-validation (0: one held-out split)."),
    test_subjects: str = typer.Option(None, help="Held-out test subjects (comma-separated); default: seeded choice."),
    val_subjects: str = typer.Option(None, help="Validation subjects (comma-separated); default: seeded choice."),
    compress: Compress = typer.Option(Compress.none, help="none, prune, or int8 (prunes unless --sparsity 0)."),
    sparsity: float = typer.Option(0.5, help="Target weight sparsity for pruning, 0 to <1."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where run directories are created."),
    name: str = typer.Option("l2mu", help="Run name (suffix of the run directory)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Fit the L2MU on real watch data and write a run directory (config, weights, metrics, plots, model card)."""
    from training.errors import HarError
    from training.pipeline import TrainRequest, run_training

    if not 0.0 <= sparsity < 1.0:
        raise HarError(f"--sparsity must be in [0, 1), got {sparsity}")
    req = TrainRequest(
        data=data, activities=csv_list(activities), subjects=csv_list(subjects), fs_hz=rate, window=window, hop=hop,
        cv=cv, test_subjects=csv_list(test_subjects), val_subjects=csv_list(val_subjects),
        model={"neuron": neuron.value, "hidden_size": hidden, "memory_size": memory, "order": order, "theta": theta},
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, runs_dir=runs_dir, name=name,
        compress=compress.value, sparsity=sparsity)
    result = run_training(req, err)
    if json_out:
        print_json(result)
    else:
        from har_app.render import train_report

        out.print(train_report(result))


def main() -> None:
    app()
