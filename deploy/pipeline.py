"""`har deploy` as a library call: run dir -> int8 step model -> fit check -> bundle -> parity -> latency/energy."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from deploy.bundle_folder import REPORT, check_out_folder, staged_bundle
from deploy.bundle_linux import RUNNER, default_remote_dir
from deploy.energy import estimate_energy_per_decision, estimate_latency, snn_synop_energy
from deploy.fit import check_fit, require_fit
from deploy.opcount import step_ops
from deploy.profiles import DeviceProfile, load_profile, load_profile_file
from deploy.report import (ArenaSummary, BundleModel, DeployReport, DeviceSummary, Estimate, FitCheck, Latency,
                           ParityCheck)
from deploy.tflite_model import StepModelInfo, inspect_step_model
from deploy.tflm_ops import require_tflm_ops
from training.errors import ExitCode, HarError
from training.run_dir import DEPLOY_DIR, INT8_MODEL, Run, latest_run, open_run, write_json

LOCAL_BENCHMARK_TIMEOUT_S = 300


@dataclass
class DeployRequest:
    device: str | None = None  # a shipped profile name; `profile` (a user's TOML) takes precedence
    profile: Path | None = None
    run: Path | None = None  # default: the latest run in runs_dir
    runs_dir: Path = Path("runs")
    out: Path | None = None  # default: RUN/deploy/<device>
    host: str | None = None  # push a Linux bundle to [user@]host[:port] and benchmark it there
    known_hosts: Path | None = None
    identity: Path | None = None
    remote_dir: str | None = None
    remote_python: str | None = None  # reuse this Python on the board instead of creating a venv
    parity_windows: int = 32
    benchmark_runs: int = 50
    runtime: str = "tflm"  # "native": the integer engine's C project (deploy/bundle_native.py)
    verify: bool = False  # MCU: build the bundle for the profile's core, run it under QEMU, report measured figures
    tflm_root: Path | None = None  # TFLM source trees for --verify (default: $HAR_TFLM_ROOT)


def resolve_profile(req: DeployRequest) -> DeviceProfile:
    if req.profile is not None:
        return load_profile_file(req.profile)
    if not req.device:
        raise HarError("give --device NAME (see `har devices`) or --profile FILE")
    return load_profile(req.device)


def load_run_model(req: DeployRequest) -> tuple[Run, bytes]:
    run = open_run(req.run if req.run is not None else latest_run(req.runs_dir))
    path = run.path / INT8_MODEL
    if not path.exists():
        raise HarError(f"{run.path} has no {INT8_MODEL}: run `har train --compress int8` first")
    return run, path.read_bytes()


def benchmark_locally(folder: Path, runs: int) -> dict:
    argv = [sys.executable, str(folder / RUNNER), "--benchmark", "--runs", str(runs)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=LOCAL_BENCHMARK_TIMEOUT_S)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise HarError(f"the bundle's runner failed on this machine: {last}", ExitCode.FAILURE)
    return {**json.loads(done.stdout.strip().splitlines()[-1])["benchmark"], "host": "localhost"}


def latency_report(profile: DeviceProfile, ops: dict, run: Run, benchmark: dict | None) -> Latency:
    if benchmark is None:
        return Latency.from_json(estimate_latency(profile, ops, run.steps_per_decision))
    return Latency(
        per_sample=benchmark["per_step_us"]["median"],
        per_decision=benchmark["per_decision_us"]["median"],
        estimate=False,
        basis=(f"measured on {benchmark['host']} ({benchmark['machine']}, {benchmark['runtime']}, "
               f"{benchmark['threads']} thread): median of {benchmark['runs']} decisions after warm-up; a decision "
               f"= {run.hop} samples x {run.lanes} lane{'s' if run.lanes > 1 else ''} "
               f"({'one state, never reset inside a segment' if run.stream else 'with window resets'})"),
        p99_per_sample=benchmark["per_step_us"]["p99"],
        p99_per_decision=benchmark["per_decision_us"]["p99"],
    )


def synop_report(run: Run) -> Estimate:
    float_stage = run.metrics.get("stages", {}).get("float", {})
    if "effective_macs_per_window" not in float_stage:
        return Estimate(value=None, estimate=True, basis="the run's metrics.json has no stages.float workload metrics")
    return Estimate.from_json(snn_synop_energy(float_stage["effective_macs_per_window"],
                                               float_stage["effective_acs_per_window"]))


def model_summary(info: StepModelInfo, ops: dict) -> BundleModel:
    return BundleModel(tflite_bytes=info.size_bytes, ops=list(info.ops), operators_per_step=info.main_operators,
                       input_quantization=info.input_quant, output_quantization=info.output_quant,
                       state_variables=len(info.states), state_bytes=info.state_bytes, params=ops["parameters"],
                       int8_macs_per_step=ops["macs"], elementwise_per_step=ops["elementwise"])


def deploy(req: DeployRequest, console: Console) -> dict:
    """Build, check and measure the bundle; returns report.json's JSON form (deploy/report.py DeployReport; the
    native runtime's report: deploy/bundle_native.py)."""
    from deploy.tflm_arena_probe import measure_arena

    profile = resolve_profile(req)
    if req.runtime == "native":
        from deploy.bundle_native import deploy_native

        return deploy_native(req, profile, console)
    if req.verify:
        from deploy.firmware.stage import require_verifiable

        require_verifiable(profile, req.tflm_root)
    if req.host and profile.bundle != "linux":
        raise HarError(f"--host pushes Linux bundles only; {profile.name} builds a {profile.bundle} bundle")
    if req.host:
        from deploy.ssh_push import SshOptions, check_remote_path, parse_host

        target, ssh_options = parse_host(req.host), SshOptions(req.known_hosts, req.identity)
        ssh_options.args()  # validates the key files before any work
        if req.remote_dir:
            check_remote_path(req.remote_dir, "--remote-dir")
    run, model = load_run_model(req)
    info = inspect_step_model(model)
    ops = {**step_ops(run.config["model"]), "ops": info.main_operators}  # the real operator count of the graph
    out = check_out_folder(Path(req.out) if req.out is not None else run.path / DEPLOY_DIR / profile.name)
    stages = ["TFLM arena", "fit", "bundle", "parity" if profile.bundle == "mcu" else None,
              "benchmark" if (req.host or profile.name == "host") and profile.bundle == "linux" else None,
              "firmware" if req.verify else None]
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("deploy", total=len([s for s in stages if s]))

        def stage(name: str) -> None:
            progress.update(task, description=f"{profile.name}: {name}")

        stage("measuring the TFLM arena")
        if profile.bundle == "mcu":
            require_tflm_ops(info.ops)
        arena = measure_arena(model)
        progress.advance(task)
        fit = check_fit(profile, len(model), arena.arena_bytes, run.lanes, info.state_bytes)
        require_fit(profile, fit)
        progress.advance(task)
        stage("writing the bundle")
        with staged_bundle(out) as staging:
            files, parity = _write_bundle(profile, staging, model, run, info, arena, req.parity_windows, stage,
                                          progress, task)
            progress.advance(task)
            measured = None
            if req.verify:
                from deploy.firmware.stage import verify_stage

                stage(f"building and running the firmware on the emulated {profile.core}")
                measured, arena = verify_stage(staging, model, run, info, arena, profile, req.parity_windows,
                                               req.tflm_root, stage)
                fit = check_fit(profile, len(model), arena.arena_bytes, run.lanes, info.state_bytes,
                                measured.as_dict()["elf"])
                require_fit(profile, fit)
                progress.advance(task)
            benchmark = None
            if profile.bundle == "linux" and req.host:
                from deploy.ssh_push import push_and_benchmark

                stage(f"pushing to {req.host} and benchmarking there")
                benchmark = push_and_benchmark(staging, target, ssh_options,
                                               req.remote_dir or default_remote_dir(out.name), req.remote_python,
                                               req.benchmark_runs)
                progress.advance(task)
            elif profile.bundle == "linux" and profile.name == "host":
                stage("benchmarking on this machine")
                benchmark = benchmark_locally(staging, req.benchmark_runs)
                progress.advance(task)
            if profile.bundle == "mcu":
                from deploy.firmware.stage import mcu_latency

                latency = Latency.from_json(mcu_latency(profile, ops, run, model, measured))
            else:
                latency = latency_report(profile, ops, run, benchmark)
            report = DeployReport(
                bundle=str(out),
                files=files + [REPORT],
                device=DeviceSummary(name=profile.name, title=profile.title, core=profile.core,
                                     clock_mhz=profile.clock_mhz, runtime=profile.runtime, bundle=profile.bundle,
                                     profile=profile.path),
                run=str(run.path),
                model=model_summary(info, ops),
                arena=ArenaSummary(min_arena_bytes=arena.min_arena_bytes, recorded_bytes=arena.recorded_bytes,
                                   arena_bytes=arena.arena_bytes, margin="10 %, 16-byte aligned",
                                   measured_with=arena.basis),
                measured=measured,
                fit=FitCheck.from_json(fit),
                parity=None if parity is None else ParityCheck.from_json(parity),
                benchmark=benchmark,
                latency_us=latency,
                energy_uj_per_decision=Estimate.from_json(
                    estimate_energy_per_decision(profile, latency.per_decision, not latency.estimate)),
                snn_synop_energy_uj_per_window=synop_report(run),
            )
            result = report.to_json()
            write_json(staging / REPORT, result)
    return result


def _write_bundle(profile, folder, model, run, info, arena, parity_windows, stage, progress, task):
    """(files, parity) for the profile's bundle kind; every kind carries the deployment contract's manifest."""
    from deploy.contract import build_contract, require_bundle_can_run, write_contract

    contract = build_contract(run, model, info)
    require_bundle_can_run(contract, profile.name)
    manifest = write_contract(folder, contract)
    if profile.bundle == "linux":
        from deploy.bundle_linux import write_linux_bundle

        return sorted([manifest, *write_linux_bundle(folder, model, contract, profile.name)]), None
    if profile.bundle == "android":
        from deploy.bundle_android import write_android_bundle

        return sorted([manifest, *write_android_bundle(folder, model, contract)]), None
    from deploy.bundle_stm32 import write_stm32_bundle
    from deploy.parity import compare_tflm_litert, held_out_windows
    from deploy.step_runtimes import TFLMStep, window_counts

    raw, labels = held_out_windows(run, parity_windows)
    z = run.normalization.apply(raw)
    counts = window_counts(TFLMStep(model, arena.arena_bytes), z[:1])[0]
    files = sorted([manifest, *write_stm32_bundle(folder, model, run, info, arena, (raw[0], counts, labels[0]))])
    progress.advance(task)
    stage(f"TFLM vs LiteRT on {len(z)} held-out windows")
    return files, compare_tflm_litert(model, z, arena.arena_bytes)
