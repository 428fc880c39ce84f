"""`har`: train, compress, deploy and run the L2MU spiking activity classifier. Heavy imports stay inside commands."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from har_app.console import cli_errors, csv_list, err, out, print_json
from training.config import L2MUConfig
from training.train_config import TrainConfig

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
    ctx: typer.Context,
    data: str = typer.Option("seglearn", help="seglearn (bundled real watch data), wisdm:PATH or csv:DIR."),
    activities: str = typer.Option(None, help="Comma-separated classes; WISDM codes (default P,O,F,Q,R,G,S)."),
    subjects: str = typer.Option(None, help="Use only these subjects (comma-separated ids)."),
    rate: float = typer.Option(20.0, help="Model rate in Hz; every source is resampled to it."),
    window: int = typer.Option(40, help="Window length in samples at the model rate."),
    hop: int = typer.Option(20, help="Hop between windows in samples (also the live decision interval)."),
    neuron: Neuron = typer.Option(L2MUConfig.neuron, help="LIF law: leaky or synaptic (current-based)."),
    hidden: int = typer.Option(L2MUConfig.hidden_size, help="Hidden population size H."),
    memory: int = typer.Option(L2MUConfig.memory_size, help="Memory channels M."),
    order: int = typer.Option(L2MUConfig.order, help="Legendre order d."),
    theta: float = typer.Option(L2MUConfig.theta, help="LMU window theta in steps."),
    current_noise: float = typer.Option(L2MUConfig.current_noise,
                                        help="Training noise on input currents (x threshold); int8 robustness."),
    learn_neuron_params: bool = typer.Option(L2MUConfig.learn_neuron_params,
                                             "--learn-neuron-params/--fixed-neuron-params",
                                             help="Learn one beta and threshold per population."),
    epochs: int = typer.Option(TrainConfig.epochs, help="Maximum epochs."),
    batch_size: int = typer.Option(TrainConfig.batch_size, help="Batch size."),
    lr: float = typer.Option(TrainConfig.lr, help="Adam learning rate."),
    patience: int = typer.Option(TrainConfig.patience,
                                 help="Early stop after this many epochs without better validation accuracy."),
    seed: int = typer.Option(TrainConfig.seed, help="One seed for data split, init and shuffling."),
    cv: int = typer.Option(0, help="Subject-grouped K-fold cross-validation (0: one held-out split)."),
    test_subjects: str = typer.Option(None, help="Held-out test subjects (comma-separated); default: seeded choice."),
    val_subjects: str = typer.Option(None, help="Validation subjects (comma-separated); default: seeded choice."),
    compress: Compress = typer.Option(Compress.none, help="none, prune, or int8 (prunes unless --sparsity 0)."),
    sparsity: float = typer.Option(0.5, help="Target weight sparsity for pruning, 0 to <1."),
    finetune_epochs: int = typer.Option(12, help="Fine-tuning epochs while pruning."),
    calibration_windows: int = typer.Option(128, help="Training windows used to calibrate int8 ranges."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where run directories are created."),
    name: str = typer.Option("l2mu", help="Run name (suffix of the run directory)."),
    config: Path = typer.Option(None, "--config", help="Model and training settings from a TOML (best.toml of "
                                                       "`har tune`, training/configs/untuned.toml); options given "
                                                       "on the command line win."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    stream: bool = typer.Option(False, "--stream", help="Streaming mode: one state through whole recordings, "
                                                        "never reset inside a stream, one lane when deployed."),
) -> None:
    """Fit the L2MU on real watch data and write a run directory (config, weights, metrics, plots, model card)."""
    from har_app.train_job import run_train_job
    from training.pipeline import TrainRequest

    req = TrainRequest(
        data=data, activities=csv_list(activities), subjects=csv_list(subjects), fs_hz=rate, window=window, hop=hop,
        cv=cv, test_subjects=csv_list(test_subjects), val_subjects=csv_list(val_subjects),
        model={"neuron": neuron.value, "hidden_size": hidden, "memory_size": memory, "order": order, "theta": theta,
               "learn_neuron_params": learn_neuron_params, "current_noise": current_noise},
        epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, runs_dir=runs_dir, name=name,
        compress=compress.value, sparsity=sparsity, finetune_epochs=finetune_epochs,
        calibration_windows=calibration_windows, stream=stream)
    if config is not None:
        from click.core import ParameterSource

        from training.run_config import apply_run_config, load_run_config

        option_key = {"hidden": "hidden_size", "memory": "memory_size"}
        typed = {option_key.get(p, p) for p in ctx.params
                 if ctx.get_parameter_source(p) is ParameterSource.COMMANDLINE}
        req = apply_run_config(req, load_run_config(config), keep=typed)
    result = run_train_job(req, err)
    if json_out:
        print_json(result)
    else:
        from har_app.render import train_report

        out.print(train_report(result))


class LiveBackend(str, Enum):
    litert = "litert"
    torch = "torch"
    native = "native"


class DeployRuntime(str, Enum):
    tflm = "tflm"
    native = "native"


class BleProtocol(str, Enum):
    pmd = "pmd"
    har_imu = "har-imu"


@app.command()
@cli_errors
def live(
    run: Path = typer.Option(None, "--run", help="Run directory (default: the latest in --runs-dir)."),
    ble: str = typer.Option(None, "--ble", help="Stream from this watch (address or name, see `har scan`)."),
    protocol: BleProtocol = typer.Option(None, "--protocol", help="BLE protocol of the watch: pmd or har-imu."),
    old_protocol: BleProtocol = typer.Option(None, "--profile", hidden=True,
                                             help="Deprecated spelling of --protocol."),
    replay: str = typer.Option(None, "--replay", help="A CSV recording, or 'bundled' (the run's test subjects)."),
    speed: float = typer.Option(None, help="Replay speed: 1 real time (default), X times faster, 0 as fast as "
                                           "possible."),
    record: Path = typer.Option(None, "--record", help="Also write what was received to this CSV (trainable)."),
    label: str = typer.Option(None, help="Label for recorded rows when the source carries none."),
    subject: str = typer.Option("live", help="Subject id written in recorded rows."),
    backend: LiveBackend = typer.Option(None, help="litert (int8 step model), torch (float) or native (integer C "
                                                   "engine); default native when the run has its integer stage "
                                                   "and a C compiler is here, else litert with model_int8.tflite."),
    device: str = typer.Option("host", help="Device profile (name or TOML file) for the energy per decision."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where to look for the latest run."),
    json_out: bool = typer.Option(False, "--json", help="JSON events on stdout, one per line, ending with a summary."),
) -> None:
    """Classify a live BLE stream or a replayed recording, one decision per hop, and report latency and energy."""
    from har_app.live.launch import LiveRequest, run_live

    if old_protocol is not None:
        err.print("warning: `har live --profile` is deprecated, use --protocol (--profile means a device profile)",
                  markup=False, highlight=False, soft_wrap=True)
        protocol = protocol or old_protocol
    run_live(LiveRequest(run=run, runs_dir=runs_dir, ble=ble, ble_profile=protocol.value if protocol else None,
                         replay=replay, speed=speed, record=record, label=label, subject=subject,
                         backend=backend.value if backend else None, device=device, json=json_out), out, err)


@app.command()
@cli_errors
def scan(
    timeout: float = typer.Option(5.0, help="Seconds to listen for advertisements (0.1 to 600)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """List nearby BLE devices and the streaming profile each speaks (pmd, har-imu), for `har live --ble`."""
    import asyncio

    from rich.table import Table

    from har_app.sources.ble import scan as scan_ble
    from training.validate import number_in, require

    require(timeout, number_in(0.1, 600.0, "in [0.1, 600] seconds"), "--timeout")
    with err.status(f"Scanning for BLE devices ({timeout:g} s)..."):
        devices = asyncio.run(scan_ble(timeout))
    if json_out:
        print_json({"timeout_s": timeout, "devices": devices})
        return
    table = Table(title=f"{len(devices)} BLE devices", title_justify="left")
    for column in ("address", "name", "rssi", "profile"):
        table.add_column(column, justify="right" if column == "rssi" else "left")
    for d in devices:
        table.add_row(d["address"], d["name"] or "", str(d["rssi"]), d["profile"] or "-")
    out.print(table)


@app.command()
@cli_errors
def devices(
    profile: Path = typer.Option(None, "--profile", help="Also validate and list this device profile TOML."),
    json_out: bool = typer.Option(False, "--json", help="Print the profiles as JSON on stdout."),
) -> None:
    """List the device profiles `har deploy` can target (core, clock, memory, runtime, power)."""
    from deploy.profiles import list_profiles, load_profile_file, profile_dict

    profiles = list_profiles() + ([load_profile_file(profile)] if profile is not None else [])
    if json_out:
        print_json({"devices": [profile_dict(p) for p in profiles]})
    else:
        from har_app.render import devices_table

        out.print(devices_table(profiles))


@app.command()
@cli_errors
def deploy(
    device: str = typer.Option(None, "--device", help="Target profile name (see `har devices`)."),
    run: Path = typer.Option(None, "--run", help="Run directory (default: the latest in --runs-dir)."),
    out_dir: Path = typer.Option(None, "--out", help="Bundle folder (default: RUN/deploy/DEVICE)."),
    host: str = typer.Option(None, "--host", help="Push a Linux bundle to [user@]host[:port] over SSH and benchmark it."),
    profile: Path = typer.Option(None, "--profile", help="Your own device profile TOML (instead of --device)."),
    known_hosts: Path = typer.Option(None, "--known-hosts", help="known_hosts file for --host (default: ~/.ssh)."),
    identity: Path = typer.Option(None, "--identity", help="SSH private key for --host (default: your keys/agent)."),
    remote_dir: str = typer.Option(None, "--remote-dir", help="Folder on the board (default: ~/har-deploy/BUNDLE)."),
    remote_python: str = typer.Option(None, "--remote-python",
                                      help="Reuse this Python on the board (needs numpy, ai-edge-litert) "
                                           "instead of creating a venv."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where to look for the latest run."),
    verify: bool = typer.Option(False, "--verify",
                                help="MCU: build the bundle for the profile's core, run it under QEMU on held-out "
                                     "windows and report measured instructions, sizes and arena."),
    tflm_root: Path = typer.Option(None, "--tflm-root",
                                   help="TFLM source trees for --verify (default: $HAR_TFLM_ROOT; docs/firmware.md)."),
    runtime: DeployRuntime = typer.Option(DeployRuntime.tflm, "--runtime",
                                          help="MCU: tflm (int8 TFLite Micro bundle) or native (integer C engine "
                                               "project, docs/integer-engine.md)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Build a self-contained bundle for a device from the run's int8 model; check fit, parity, latency, energy."""
    from deploy.pipeline import DeployRequest
    from deploy.pipeline import deploy as run_deploy

    result = run_deploy(DeployRequest(device=device, profile=profile, run=run, runs_dir=runs_dir, out=out_dir,
                                      host=host, known_hosts=known_hosts, identity=identity, remote_dir=remote_dir,
                                      remote_python=remote_python, verify=verify, tflm_root=tflm_root,
                                      runtime=runtime.value), err)
    if json_out or runtime is DeployRuntime.native:
        print_json(result)
    else:
        from har_app.render import deploy_report

        out.print(deploy_report(result))


@app.command()
@cli_errors
def tune(
    name: str = typer.Option("l2mu", help="Study name: storage runs/tune-NAME.db and folder runs/tune-NAME/."),
    trials: int = typer.Option(20, help="Trials to finish (complete or pruned) in this call, across workers."),
    data: str = typer.Option("seglearn", help="seglearn (bundled real watch data), wisdm:PATH or csv:DIR."),
    activities: str = typer.Option(None, help="Comma-separated classes; WISDM codes (default P,O,F,Q,R,G,S)."),
    subjects: str = typer.Option(None, help="Use only these subjects (comma-separated ids)."),
    space: Path = typer.Option(None, "--space", help="Search space TOML (default: training/configs/"
                                                     "search_space.toml; docs/tuning.md)."),
    test_subjects: str = typer.Option(None, help="Subjects no trial sees (default: the seeded choice of har train)."),
    folds: int = typer.Option(3, help="Subject-grouped inner folds of the training subjects per trial."),
    epochs: int = typer.Option(12, help="Maximum epochs per inner fold."),
    patience: int = typer.Option(4, help="Early stop within a fold after this many epochs without improvement."),
    seed: int = typer.Option(42, help="Seed of the test-subject choice, folds, sampler and training."),
    storage: str = typer.Option(None, help="Optuna storage URL, e.g. postgresql://user@host/db to share a study "
                                           "between machines (default: sqlite:///RUNS_DIR/tune-NAME.db)."),
    resume: bool = typer.Option(False, "--resume", help="Continue (or join) the existing study NAME."),
    workers: int = typer.Option(1, help="Local worker processes (one torch thread each)."),
    heartbeat: float = typer.Option(30.0, help="Worker heartbeat in s; a trial silent for 2x this is retried."),
    runs_dir: Path = typer.Option(Path("runs"), help="Where the storage and the study folder go."),
    dashboard: bool = typer.Option(False, "--dashboard", help="Serve optuna-dashboard on the study instead."),
    host: str = typer.Option("127.0.0.1", help="--dashboard: address to listen on."),
    port: int = typer.Option(8080, help="--dashboard: port."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Search the L2MU's hyperparameters with Optuna on inner folds of the training subjects; write the best
    configuration (for `har train --config`), the trials and plots."""
    from training.tune import TuneRequest, run_tune, serve_dashboard

    req = TuneRequest(name=name, trials=trials, data=data, activities=csv_list(activities),
                      subjects=csv_list(subjects), space=space, test_subjects=csv_list(test_subjects), folds=folds,
                      epochs=epochs, patience=patience, seed=seed, storage=storage, resume=resume, workers=workers,
                      heartbeat_s=heartbeat, runs_dir=runs_dir)
    if dashboard:
        serve_dashboard(req, host, port, err)
        return
    result = run_tune(req, err)
    if json_out:
        print_json(result)
    else:
        best = result["best"]
        out.print(f"study {result['study']} ({result['storage']}): {result['trials']} finished trials, "
                  + (f"best {best['value']:.4f} (trial {best['trial']}) -> {best['config']}" if best else
                     "no completed trial yet"))
    if result["interrupted"]:
        raise KeyboardInterrupt


def main() -> None:
    app()
