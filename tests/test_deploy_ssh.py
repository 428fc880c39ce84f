"""`har deploy --host`: a real OpenSSH push to a real sshd on 127.0.0.1 (temporary host key, authorized_keys and
known_hosts, no passwords), install with a reused Python, on-device benchmark, latency parsed; host keys checked."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HAR = [sys.executable, "-c", "from har_app.cli import main; main()"]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """sshd on a free loopback port for the current user: (port, identity, known_hosts, other_known_hosts)."""
    if not Path(SSHD).exists():
        pytest.fail("sshd is not installed: apt-get install openssh-server (CI must install it)")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory sshd needs as root
    d = tmp_path_factory.mktemp("sshd")
    _keygen(d / "host_key")
    _keygen(d / "client_key")
    _keygen(d / "other_host_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = _free_port()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'host_key.pub').read_text()}")
    (d / "other_known_hosts").write_text(f"[127.0.0.1]:{port} {(d / 'other_host_key.pub').read_text()}")
    config = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {d / 'host_key'}", f"PidFile {d / 'sshd.pid'}",
              f"AuthorizedKeysFile {d / 'authorized_keys'}", "PasswordAuthentication no",
              "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no", "StrictModes no",
              "PermitRootLogin prohibit-password", f"AllowUsers {getpass.getuser()}",
              "Subsystem sftp internal-sftp"]
    (d / "sshd_config").write_text("\n".join(config) + "\n")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=open(d / "sshd.log", "w"))
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd exited: {(d / 'sshd.log').read_text()}")
            time.sleep(0.05)
    yield port, d / "client_key", d / "known_hosts", d / "other_known_hosts"
    proc.terminate()
    proc.wait(timeout=10)


def test_push_install_and_benchmark_over_ssh(sshd, int8_run, tmp_path):
    port, identity, known_hosts, _ = sshd
    remote = tmp_path / "board"
    done = subprocess.run([*HAR, "deploy", "--device", "rpi4", "--run", str(int8_run), "--out", str(tmp_path / "b"),
                           "--host", f"{getpass.getuser()}@127.0.0.1:{port}", "--known-hosts", str(known_hosts),
                           "--identity", str(identity), "--remote-dir", str(remote), "--remote-python",
                           sys.executable, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (remote / "har_runner.py").exists() and (remote / "model_int8.tflite").read_bytes() == \
        (int8_run / "model_int8.tflite").read_bytes()
    bench = result["benchmark"]
    assert bench["host"] == f"{getpass.getuser()}@127.0.0.1:{port}" and bench["runs"] == 50
    assert result["latency_us"]["estimate"] is False
    assert result["latency_us"]["per_sample"] == bench["per_step_us"]["median"] > 0
    assert result["latency_us"]["per_decision"] == bench["per_decision_us"]["median"]
    assert "measured latency" in result["energy_uj_per_decision"]["basis"]


def test_wrong_host_key_is_refused(sshd, int8_run, tmp_path):
    port, identity, _, other_known_hosts = sshd
    done = subprocess.run([*HAR, "deploy", "--device", "rpi4", "--run", str(int8_run), "--out", str(tmp_path / "b"),
                           "--host", f"127.0.0.1:{port}", "--known-hosts", str(other_known_hosts),
                           "--identity", str(identity), "--remote-dir", str(tmp_path / "board"),
                           "--remote-python", sys.executable], capture_output=True, text=True, timeout=300)
    assert done.returncode == 4
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "failed" in lines[0]
    assert not (tmp_path / "board").exists()


@pytest.mark.parametrize("spec", ["-oProxyCommand=x@host", "pi@host;rm", "pi@host:99999", "a b@host"])
def test_bad_host_spec_exits_2(int8_run, tmp_path, spec):
    done = subprocess.run([*HAR, "deploy", "--device", "rpi4", "--run", str(int8_run), "--out", str(tmp_path / "b"),
                           "--host", spec], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--host" in done.stderr
