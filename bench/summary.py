"""From per-fold measurements to the benchmark's summary: per model mean ± std over folds, pooled latency
percentiles, device estimates (deploy.energy with the device profiles, the same method for every model) and the
ratio of ours to the best peer on each column."""

from __future__ import annotations

import numpy as np

from deploy.energy import estimate_energy_per_decision, estimate_latency, step_cycles
from deploy.profiles import load_profile

PROFILES = ("stm32l4r5", "rpi4")
OURS = "l2mu_int8_litert"  # the deployable L2MU: int8 step on LiteRT (its TFLM twin has the same size and ops)
# (column, what it is, higher is better)
COLUMNS = (
    ("accuracy", "accuracy (mean over folds)", True),
    ("macro_f1", "macro-F1 (mean over folds)", True),
    ("params", "parameters", False),
    ("model_bytes", "model bytes", False),
    ("arena_bytes", "TFLM arena bytes", False),
    ("macs", "MACs per decision (L2MU: effective)", False),
    ("dense_macs", "MACs executed per decision (dense kernels)", False),
    ("latency_median_us", "host latency per decision, median (µs)", False),
    ("latency_p99_us", "host latency per decision, p99 (µs)", False),
    ("energy_stm32l4r5_uj", "energy per decision, stm32l4r5 (µJ, estimate)", False),
    ("energy_rpi4_uj", "energy per decision, rpi4 (µJ, estimate)", False),
)
TIE = 0.005  # ratios within 0.5 % of 1 are reported as on par


def device_estimates(workload: dict | None, emulated: dict | None = None) -> dict:
    """Latency and energy per decision on each profile from op counts and the profile's constants; on the
    emulated MCU profile from executed instructions instead when `emulated` holds them (bench/device.py)."""
    from bench.device import EMULATED_PROFILE, device_from_instructions

    if workload is None:
        return {}
    out = {}
    for name in PROFILES:
        profile = load_profile(name)
        ops = {k: workload[k] for k in ("macs", "elementwise", "ops")}
        latency = estimate_latency(profile, ops, workload["invocations"])
        dispatch = ops["ops"] * profile.overhead_cycles_per_op / step_cycles(profile, ops) if ops["ops"] else 0.0
        out[name] = {"latency_us": latency["per_decision"], "dispatch_fraction": dispatch,
                     "energy_uj": estimate_energy_per_decision(profile, latency["per_decision"], False)["value"],
                     "estimate": True, "basis": latency["basis"] + f"; E = t x {profile.active_mw:g} mW"}
        if name == EMULATED_PROFILE and emulated and "error" not in emulated:
            out[name] = {**device_from_instructions(emulated), "dispatch_fraction": dispatch}
    return out


def _mean(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def summarise_model(records: list[dict], samples: list[float]) -> dict:
    """One model over its folds: `records` hold each fold's measurements, `samples` every timed decision (us)."""
    last = records[-1]
    acc, f1 = np.array([r["accuracy"] for r in records]), np.array([r["macro_f1"] for r in records])
    out = {k: last[k] for k in ("key", "label", "ours", "runtime", "format", "notes")}
    out.update({
        "folds": len(records), "accuracy": float(acc.mean()), "accuracy_std": float(acc.std()),
        "macro_f1": float(f1.mean()), "macro_f1_std": float(f1.std()),
        "params": round(_mean(records, "params")), "model_bytes": round(_mean(records, "model_bytes")),
        "arena_bytes": max((r["arena_bytes"] for r in records if r["arena_bytes"] is not None), default=None),
        "macs": _mean(records, "macs"), "acs": _mean(records, "acs"), "dense_macs": _mean(records, "dense_macs"),
        "latency_median_us": float(np.median(samples)), "latency_p99_us": float(np.percentile(samples, 99)),
        "timed_decisions": len(samples), "epochs_per_fold": [r["epochs"] for r in records if r["epochs"]],
    })
    devices = [r["devices"] for r in records if r["devices"]]
    out["devices"] = {name: {"latency_us": float(np.mean([d[name]["latency_us"] for d in devices])),
                             "energy_uj": float(np.mean([d[name]["energy_uj"] for d in devices])),
                             "dispatch_fraction": float(np.mean([d[name]["dispatch_fraction"] for d in devices])),
                             "estimate": True, "basis": devices[-1][name]["basis"],
                             "from_instructions": all(d[name].get("from_instructions", False) for d in devices)}
                      for name in PROFILES} if devices else {}
    for name in PROFILES:
        out[f"energy_{name}_uj"] = out["devices"][name]["energy_uj"] if out["devices"] else None
    return out


def outcome(ratio: float, higher_is_better: bool) -> str:
    """'win', 'loss' or 'par' (within TIE of 1) for ours / peer = ratio."""
    if abs(ratio - 1) < TIE:
        return "par"
    return "win" if (ratio > 1) == higher_is_better else "loss"


def ratios(models: list[dict], ours_key: str = OURS) -> list[dict]:
    """For every column: ours, the best peer, ours / best and who wins. Models without a value (or, for MAC
    columns, without MACs: the forest only compares) are left out of that column."""
    ours = next(m for m in models if m["key"] == ours_key)
    peers = [m for m in models if not m["ours"]]
    rows = []
    for column, title, higher in COLUMNS:
        valid = [p for p in peers if p.get(column) is not None and (p[column] > 0 or "macs" not in column)]
        if ours.get(column) is None or not valid:
            continue
        best = (max if higher else min)(valid, key=lambda p: p[column])
        ratio = ours[column] / best[column] if best[column] else float("inf")
        factor = ratio if ratio >= 1 else (1 / ratio if ratio else float("inf"))
        rows.append({"column": column, "title": title, "higher_is_better": higher, "ours": ours[column],
                     "best_peer": best["label"], "best_peer_runtime": best["runtime"], "peer": best[column],
                     "ratio": ratio, "factor": factor, "outcome": outcome(ratio, higher)})
    return rows
