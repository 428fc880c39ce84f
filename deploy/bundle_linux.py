"""The Linux bundle (Raspberry Pi 4, this host): the int8 model, a numpy + LiteRT runner, its settings,
requirements.txt and a systemd unit."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from training.atomic import write_bytes, write_text
from training.run_dir import Run, to_json

MODEL_FILE = "model_int8.tflite"
RUNNER = "har_runner.py"


def default_remote_dir(bundle_name: str) -> str:
    return f"har-deploy/{bundle_name}"


def runner_config(run: Run) -> dict:
    """What the runner needs (bundle.json); the quantisation it reads from the model itself."""
    return {"model": MODEL_FILE, "classes": run.classes, "fs_hz": run.fs_hz, "window": run.window, "hop": run.hop,
            "mean": run.normalization.mean.tolist(), "std": run.normalization.std.tolist(),
            "channels": ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"], "units": ["m/s^2"] * 3 + ["rad/s"] * 3,
            "run": run.path.name}


def write_linux_bundle(folder: Path, model: bytes, run: Run, device: str) -> list[str]:
    templates = resources.files("deploy") / "templates" / "linux"
    values = {"DEVICE": device, "RATE": f"{run.fs_hz:g}", "HOP": run.hop, "WINDOW": run.window,
              "REMOTE_DIR": default_remote_dir(folder.name)}
    write_bytes(folder / MODEL_FILE, model)
    write_text(folder / "bundle.json", to_json(runner_config(run)))
    write_text(folder / "labels.txt", "\n".join(run.classes) + "\n")
    for name in (RUNNER, "requirements.txt", "har.service", "README.md"):
        text = (templates / name).read_text(encoding="utf-8")
        write_text(folder / name, text if name == RUNNER else Template(text).safe_substitute(values))
    (folder / RUNNER).chmod(0o755)
    return sorted([MODEL_FILE, "bundle.json", "labels.txt", RUNNER, "requirements.txt", "har.service", "README.md"])
