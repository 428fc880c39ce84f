"""The run's model card README.md: YAML front matter, then data, split, metrics, intended use and limits."""

from __future__ import annotations


def model_card(result: dict, config: dict) -> str:
    ds, model, fl = result["dataset"], result["model"], result["stages"]["float"]
    split = config["split"]
    cv = result.get("cv")
    lines = [
        "---",
        "license: apache-2.0",
        "library_name: har",
        "tags: [spiking-neural-network, l2mu, human-activity-recognition, snntorch]",
        f"datasets: [{ds['name']}]",
        "model-index:",
        f"- name: l2mu-{model['neuron']}",
        "  results:",
        "  - task: {type: time-series-classification, name: activity recognition}",
        f"    dataset: {{name: {ds['name']}, type: {ds['name']}}}",
        "    metrics:",
        f"    - {{type: accuracy, value: {fl['accuracy']:.4f}, name: held-out-subject accuracy}}",
        f"    - {{type: f1, value: {fl['macro_f1']:.4f}, name: macro F1}}",
        "---",
        "",
        f"# L2MU ({model['neuron']} neurons) for {len(ds['classes'])}-class activity recognition",
        "",
        "A Legendre Memory Unit built from leaky integrate-and-fire neurons with an encoding-free spiking",
        "input module (Fra et al., ICANN 2024), trained with `har train`.",
        "",
        "## Data",
        f"- Source: `{ds['name']}` ({config['data']['spec']}), classes: {', '.join(ds['classes'])}.",
        f"- Input: 6 channels (accelerometer m/s^2, gyroscope rad/s) resampled from "
        f"{config['data']['source_fs_hz']} Hz to {ds['fs_hz']:g} Hz; windows of {ds['window']} samples "
        f"({ds['window'] / ds['fs_hz']:g} s), hop {config['data']['hop']}; standardised with statistics of "
        "the training subjects only (`normalization.json`).",
        f"- Split by subject: train {split['train']}, validation {split['val']}, test {split['test']} "
        f"(seed {config['train']['seed']}).",
        "",
        "## Metrics (held-out test subjects)",
        f"- Accuracy {fl['accuracy']:.4f}, macro F1 {fl['macro_f1']:.4f} on {fl['windows']} windows.",
        "- Per-class F1: " + ", ".join(f"{c} {v:.3f}" for c, v in fl["per_class_f1"].items()) + ".",
        f"- Parameters: {model['params']}. Per window: {fl['synops_per_window']:.0f} synaptic operations "
        f"({fl['effective_macs_per_window']:.0f} effective MACs, {fl['effective_acs_per_window']:.0f} effective ACs), "
        f"activation sparsity {fl['activation_sparsity']:.3f}, {fl['membrane_updates_per_window']} membrane updates.",
    ]
    if cv:
        lines.append(f"- Subject-grouped {cv['k']}-fold cross-validation: accuracy {cv['accuracy_mean']:.4f} "
                     f"± {cv['accuracy_std']:.4f}, macro F1 {cv['macro_f1_mean']:.4f} ± {cv['macro_f1_std']:.4f}. "
                     "The saved weights are those of fold 1.")
    lines += [
        "",
        "## Intended use",
        "Research and prototyping of low-power activity recognition on wrist-worn IMUs, and as the",
        "starting point for `har train --compress int8`, `har deploy` and `har live`.",
        "",
        "## Limits",
        f"- Trained on {len(split['train'])} subjects; accuracy on other people, devices, wear positions or",
        "  sampling rates is not known until measured.",
        "- Decisions come from output spike counts over a whole window; ties are broken by class order.",
        "- Not a medical device.",
        "",
    ]
    return "\n".join(lines)
