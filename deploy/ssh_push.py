"""Push a Linux bundle to a board over SSH with the system's OpenSSH client, install it, run its benchmark there.

Host keys are always checked (StrictHostKeyChecking=yes, BatchMode=yes: no prompts, no passwords) against the
user's known_hosts or an explicit file. Local commands are argument lists; the commands run on the board are
joined with shlex quoting from validated parts, because ssh hands its command line to the remote shell.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from training.errors import ExitCode, HarError

HOST_SPEC = re.compile(r"^(?:(?P<user>[A-Za-z_][A-Za-z0-9_.-]{0,31})@)?"
                       r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                       r"(?::(?P<port>[0-9]{1,5}))?$")
REMOTE_PATH = re.compile(r"^[A-Za-z0-9_./~-]+$")
TIMEOUT_S = {"connect": 10, "copy": 300, "install": 900, "benchmark": 300}


@dataclass(frozen=True)
class SshTarget:
    user: str | None
    host: str
    port: int

    @property
    def destination(self) -> str:
        host = self.host.strip("[]")
        return f"{self.user}@{host}" if self.user else host

    def __str__(self) -> str:
        return f"{self.destination}:{self.port}"


def parse_host(spec: str) -> SshTarget:
    """`[user@]host[:port]`, host a DNS name, IPv4 address or [IPv6]; anything else is refused (no options,
    no shell characters can reach ssh)."""
    m = HOST_SPEC.match(spec)
    if not m:
        raise HarError(f"--host must be [user@]host[:port] (e.g. pi@raspberrypi.local), got {spec!r}")
    port = int(m.group("port") or 22)
    if not 1 <= port <= 65535:
        raise HarError(f"--host port must be 1..65535, got {port}")
    return SshTarget(m.group("user"), m.group("host"), port)


def check_remote_path(path: str, what: str) -> str:
    """A path on the board as the remote commands use it. The commands are quoted, so the remote shell never
    expands `~`: `~` and `~/x` become `.` and `./x` (ssh and scp start in the remote home); `~user` and a `~`
    anywhere else are refused rather than created as a literal folder."""
    if not REMOTE_PATH.match(path) or path.startswith("-") or ".." in path.split("/"):
        raise HarError(f"{what} may use letters, digits and _ . / ~ - (no '..'), got {path!r}")
    if path == "~" or path.startswith("~/"):
        path = "." + path[1:]
    if "~" in path:
        raise HarError(f"{what}: '~' is expanded only at the start ('~/dir', the remote home), got {path!r}")
    return path


@dataclass(frozen=True)
class SshOptions:
    known_hosts: Path | None = None  # None: the user's ~/.ssh/known_hosts
    identity: Path | None = None  # None: the user's keys / agent

    def args(self) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o",
                f"ConnectTimeout={TIMEOUT_S['connect']}"]
        if self.known_hosts is not None:
            if not self.known_hosts.is_file():
                raise HarError(f"--known-hosts {self.known_hosts}: no such file")
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if self.identity is not None:
            if not self.identity.is_file():
                raise HarError(f"--identity {self.identity}: no such file")
            args += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        return args


class SshSession:
    def __init__(self, target: SshTarget, options: SshOptions) -> None:
        self.target, self.options = target, options

    def _run(self, argv: list[str], step: str) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S[step], stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise HarError(f"{argv[0]} not found: install the OpenSSH client", ExitCode.SSH) from None
        except subprocess.TimeoutExpired:
            raise HarError(f"{step} on {self.target} timed out after {TIMEOUT_S[step]} s", ExitCode.SSH) from None
        if done.returncode != 0:
            lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()] or [f"exit status {done.returncode}"]
            raise HarError(f"{step} on {self.target} failed: {lines[-1]}", ExitCode.SSH)
        return done.stdout

    def run(self, remote_argv: list[str], step: str) -> str:
        """Run one command on the board; its arguments are quoted for the remote shell."""
        return self._run(["ssh", *self.options.args(), "-p", str(self.target.port), "--", self.target.destination,
                          shlex.join(remote_argv)], step)

    def copy(self, files: list[Path], remote_dir: str) -> None:
        self._run(["scp", *self.options.args(), "-P", str(self.target.port), "-p", *map(str, files),
                   f"{self.target.destination}:{remote_dir}/"], "copy")


def push_and_benchmark(folder: Path, target: SshTarget, options: SshOptions, remote_dir: str,
                       remote_python: str | None, runs: int) -> dict:
    """Copy the bundle to `remote_dir` (relative to the remote home unless absolute), install it (a venv with
    requirements.txt, or check that `remote_python` already has numpy and a LiteRT interpreter), run
    `har_runner.py --benchmark` there and return its JSON with where it ran."""
    remote_dir = check_remote_path(remote_dir, "--remote-dir")
    session = SshSession(target, options)
    session.run(["mkdir", "-p", remote_dir], "connect")
    session.copy(sorted(p for p in folder.iterdir() if p.is_file()), remote_dir)
    if remote_python is None:
        python = f"{remote_dir}/.venv/bin/python"
        session.run(["python3", "-m", "venv", f"{remote_dir}/.venv"], "install")
        session.run([python, "-m", "pip", "install", "--quiet", "-r", f"{remote_dir}/requirements.txt"], "install")
        install = "venv + pip install -r requirements.txt"
    else:
        python = check_remote_path(remote_python, "--remote-python")
        probe = ("import numpy\ntry:\n import ai_edge_litert.interpreter\nexcept ImportError:\n"
                 " import tflite_runtime.interpreter\n")
        session.run([python, "-c", probe], "install")
        install = f"reused {python} (numpy and a LiteRT interpreter present)"
    out = session.run([python, f"{remote_dir}/har_runner.py", "--benchmark", "--runs", str(runs)], "benchmark")
    try:
        result = json.loads(out.strip().splitlines()[-1])["benchmark"]
    except (ValueError, KeyError, IndexError):
        raise HarError(f"benchmark on {target} printed no result: {out.strip()[-200:]!r}", ExitCode.SSH) from None
    return {**result, "host": str(target), "remote_dir": remote_dir, "install": install}
