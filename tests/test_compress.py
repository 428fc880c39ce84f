"""`har train --compress int8` on a slice of real data: pruning, the int8 step graph, LiteRT vs TFLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli import har, json_out

from training.errors import HarError

SLICE = ["--subjects", "3,4,5,6", "--activities", "PEN,ABD,FEL", "--test-subjects", "4", "--val-subjects", "3",
         "--epochs", "2", "--hidden", "12", "--memory", "4", "--batch-size", "32", "--finetune-epochs", "2",
         "--calibration-windows", "16"]


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = json_out(har("train", *SLICE, "--compress", "int8", "--sparsity", "0.6", "--runs-dir", str(runs),
                          "--json"))
    return result, Path(result["run_dir"])


def test_compress_json_and_artifacts(compressed):
    result, run = compressed
    pruned, int8 = result["stages"]["pruned"], result["stages"]["int8"]
    for key in ("accuracy_litert", "accuracy_tflm", "agreement_with_float", "tflite_bytes", "tflm_arena_bytes", "ops"):
        assert key in int8
    n = int8["windows"]
    assert n == pruned["windows"] and int8["accuracy_float"] == pytest.approx(pruned["accuracy"])  # from the pruned
    for key in ("accuracy_litert", "accuracy_tflm", "agreement_with_float"):  # fractions of the n test windows
        assert int8[key] * n == pytest.approx(round(int8[key] * n))
    # two models agreeing on a fraction a of the windows differ in accuracy by at most 1 - a
    assert abs(int8["accuracy_litert"] - int8["accuracy_float"]) <= 1 - int8["agreement_with_float"] + 1e-9
    assert int8["tflite_bytes"] == (run / "model_int8.tflite").stat().st_size
    assert (run / "model_fp32.tflite").stat().st_size > int8["tflite_bytes"]
    assert "pruned" in json.loads((run / "metrics.json").read_text())["stages"]
    source = (run / "model_int8.cc").read_text()
    assert "alignas(16) const unsigned char model_int8[]" in source
    assert f"model_int8_len = {int8['tflite_bytes']};" in source
    header = (run / "model_int8.h").read_text()
    assert '"PEN", "ABD", "FEL"' in header and "#define HAR_WINDOW 40" in header
    assert (run / "quantization_report.md").read_text().startswith("# Quantisation report")
    assert pruned["sparsity"] == pytest.approx(0.6, abs=0.03)


def test_every_pruned_weight_matrix_reaches_the_target_sparsity(compressed):
    from safetensors.numpy import load_file

    result, run = compressed
    weights = load_file(str(run / "weights_pruned.safetensors"))
    for name in ("encoder", "decoder", "e_x", "e_h", "e_m", "w_x", "w_h", "w_m", "out"):
        w = weights[f"{name}.weight"]
        reached = float(np.mean(w == 0))  # counted here, not taken from the report
        assert 0.6 - 1 / w.size <= reached, name  # n weights can only reach multiples of 1/n (rounded)
        assert reached <= 0.6 + 1 / w.size or name == "e_m", name  # e_m starts at zero: extra zeros are its own
        assert result["stages"]["pruned"]["sparsity_per_layer"][name] == pytest.approx(reached)


def test_int8_ops_are_tflm_builtins_and_the_model_runs_in_tflm(compressed):
    from tflite_micro import runtime as tflm

    _, run = compressed
    ops = set(json.loads((run / "metrics.json").read_text())["stages"]["int8"]["ops"])
    # TFLM builtins (docs/toolchain.md); nothing Flex, nothing TFLM lacks (SELECT, REDUCE_PROD, SIGN...)
    tflm_has = {"FULLY_CONNECTED", "ADD", "SUB", "MUL", "GREATER", "SELECT_V2", "QUANTIZE", "DEQUANTIZE", "RESHAPE",
                "CONCATENATION", "GATHER", "STRIDED_SLICE", "CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE",
                "ASSIGN_VARIABLE"}
    assert ops <= tflm_has
    interp = tflm.Interpreter.from_bytes((run / "model_int8.tflite").read_bytes())
    assert interp.get_input_details(0)["shape"].tolist() == [1, 6]  # subgraph 0 is the step, not zero_state
    interp.set_input(np.zeros((1, 6), np.int8), 0)
    interp.invoke()
    assert interp.get_output(0).shape == (1, 3)


def _raw_windows(n: int) -> np.ndarray:
    from training.sources import load_dataset
    from training.windowing import make_windows

    return make_windows(load_dataset("seglearn", ["PEN", "ABD", "FEL"]).only_subjects(["4"]), 20.0, 40, 20).x[:n]


def _test_windows(run: Path, n: int = 24) -> np.ndarray:
    from training.run_dir import open_run

    return open_run(run).normalization.apply(_raw_windows(n))


def test_litert_and_tflm_agree_on_test_windows(compressed):
    from deploy.step_runtimes import LiteRTStep, TFLMStep, window_counts

    _, run = compressed
    model, x = (run / "model_int8.tflite").read_bytes(), _test_windows(run)
    litert, tflm = window_counts(LiteRTStep(model), x), window_counts(TFLMStep(model), x)
    # int8 FULLY_CONNECTED rounding may differ by 1 LSB between the runtimes and flip a near-threshold spike
    assert np.mean(np.abs(litert - tflm).sum(1) <= 2) >= 0.8
    assert np.mean(litert.argmax(1) == tflm.argmax(1)) >= 0.8


def test_zero_state_signature_resets_like_a_fresh_interpreter(compressed):
    from deploy.step_runtimes import LiteRTStep, window_counts

    _, run = compressed
    model, x = (run / "model_fp32.tflite").read_bytes(), _test_windows(run, 6)
    reused = window_counts(LiteRTStep(model), x)  # one interpreter, zero_state between windows
    fresh = np.array([window_counts(LiteRTStep(model), w[None])[0] for w in x])
    assert np.array_equal(reused, fresh)


def test_fp32_step_graph_matches_the_torch_model_exactly(compressed):
    import torch

    from deploy.step_runtimes import LiteRTStep, window_counts
    from training.checkpoint import load_model
    from training.run_dir import open_run

    _, run = compressed
    x = _test_windows(run, 12)
    torch_counts = load_model(open_run(run), "weights_pruned.safetensors")(torch.from_numpy(x)).detach().numpy()
    assert np.array_equal(window_counts(LiteRTStep((run / "model_fp32.tflite").read_bytes()), x), torch_counts)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_tflite_is_a_clear_error(compressed, tmp_path, damage):
    from deploy.step_runtimes import LiteRTStep, TFLMStep

    _, run = compressed
    good = (run / "model_int8.tflite").read_bytes()
    bad = good[: len(good) // 3] if damage == "truncate" else b"TFL3" + bytes(range(256)) * 8
    for runner in (LiteRTStep, TFLMStep):
        with pytest.raises(HarError):
            runner(bad)
    broken = tmp_path / "broken-run"
    import shutil

    shutil.copytree(run, broken)
    (broken / "model_int8.tflite").write_bytes(bad)
    proc = har("deploy", "--device", "rpi4", "--run", str(broken), "--out", str(tmp_path / "bundle"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.strip()]) == 1


def test_pruning_fine_tune_is_deterministic_under_its_seed(tiny_run):
    """Two pruning fine-tunes of the same run with the same seed give identical weights; another seed does not."""
    from safetensors.numpy import load_file

    from deploy.prune import prune_and_finetune
    from training.config import L2MUConfig
    from training.run_dir import open_run

    run = open_run(tiny_run)
    cfg, weights = L2MUConfig.from_dict(run.config["model"]), load_file(str(tiny_run / "weights.safetensors"))
    x = _raw_windows(48)  # raw SI: the fine-tune augments them (a random rotation per window), then normalises
    y = np.arange(len(x)) % cfg.n_classes
    norm = run.normalization.apply

    def pruned(seed: int) -> dict[str, np.ndarray]:
        return prune_and_finetune(cfg, weights, x[:32], y[:32], norm(x[32:]), y[32:], 0.5, norm, 20.0, epochs=1,
                                  batch_size=8, seed=seed).weights

    a, b, c = pruned(7), pruned(7), pruned(8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_pruning_fine_tune_batches_are_augmented_like_training():
    """Each epoch: a permutation of the windows, each rotated (norms of acc and gyro kept up to the +-10 % amplitude
    scale) and then normalised; with augment_deg 0 the batches are the windows themselves, permuted."""
    from deploy.prune import AugmentedWindows

    x = _raw_windows(40).astype(np.float32)
    y = np.arange(len(x))
    plain = AugmentedWindows(x, y, 16, lambda v: v, 0.0, seed=3)
    xs, ys = zip(*(plain[i] for i in range(len(plain))))
    assert len(plain) == 3 and np.array_equal(np.concatenate(xs), x[np.concatenate(ys)])
    rotated = AugmentedWindows(x, y, 40, lambda v: v, 20.0, seed=3)
    first, order = rotated[0]
    rotated.on_epoch_end()
    second, order2 = rotated[0]
    assert sorted(order) == list(range(40)) and not np.array_equal(order, order2)
    for part in (slice(0, 3), slice(3, 6)):
        ratio = np.linalg.norm(first[..., part], axis=-1) / np.linalg.norm(x[order][..., part], axis=-1)
        assert np.all((ratio > 0.9 - 1e-4) & (ratio < 1.1 + 1e-4))
        assert np.allclose(ratio, ratio[:, :1], rtol=1e-4)  # one scale per window
    assert not np.allclose(first, x[order], atol=1e-3)


def test_a_failed_compression_check_keeps_the_trained_float_run(tmp_path, monkeypatch):
    """A compression stage that fails its check (here the int8 stage, made to fail: no real model fails on demand)
    must not take the finished training with it: the error names the kept run, keeps its exit code, and the run
    directory is a finished float run without compression stages."""
    import deploy.compress
    from conftest import _train_tiny
    from training.errors import ExitCode
    from training.run_dir import is_trained

    def failing(*args, **kwargs):
        raise HarError("TFLM lacks op X", ExitCode.DOMAIN)

    monkeypatch.setattr(deploy.compress, "compress_run", failing)
    with pytest.raises(HarError) as caught:
        _train_tiny(tmp_path, "kept", compress="int8")
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert caught.value.exit_code == ExitCode.DOMAIN and "TFLM lacks op X" in str(caught.value)
    assert str(run) in str(caught.value) and is_trained(run) and (run / "weights.safetensors").exists()
    assert set(json.loads((run / "metrics.json").read_text())["stages"]) <= {"float"}
