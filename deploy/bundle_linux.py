"""The Linux bundle (Raspberry Pi 4, this host): the int8 model, a numpy + LiteRT runner driven by the bundle's
deployment contract `har-contract.json` (deploy/pipeline.py writes it into every bundle), the contract's reader and the
live resampler beside it (copied verbatim from deploy/, so the runner needs no `har`), requirements.txt and a systemd
unit."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from string import Template

from deploy.har_contract import DeploymentContract
from training.atomic import write_bytes, write_text

MODEL_FILE = "model_int8.tflite"
RUNNER = "har_runner.py"
# bundle file name -> the deploy/ module it is a copy of (the runner loads them by these names)
PORTABLE_MODULES = {"har_contract.py": "har_contract.py", "har_resampler.py": "stream_resampler.py",
                    "har_native_log.py": "native_log.py"}


def default_remote_dir(bundle_name: str) -> str:
    return f"har-deploy/{bundle_name}"


def write_linux_bundle(folder: Path, model: bytes, contract: DeploymentContract, device: str) -> list[str]:
    templates = resources.files("deploy") / "templates" / "linux"
    values = {"DEVICE": device, "REMOTE_DIR": default_remote_dir(folder.name)}
    write_bytes(folder / MODEL_FILE, model)
    files = [MODEL_FILE, "labels.txt", RUNNER, "requirements.txt", "har.service",
             "README.md", *PORTABLE_MODULES]
    write_text(folder / "labels.txt", "\n".join(contract.classes) + "\n")
    for name, source in PORTABLE_MODULES.items():
        write_text(folder / name, (resources.files("deploy") / source).read_text(encoding="utf-8"))
    for name in (RUNNER, "requirements.txt", "har.service", "README.md"):
        text = (templates / name).read_text(encoding="utf-8")
        write_text(folder / name, text if name == RUNNER else Template(text).safe_substitute(values))
    (folder / RUNNER).chmod(0o755)
    return sorted(files)
