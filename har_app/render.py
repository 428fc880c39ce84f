"""Rich tables for the results of each command (stdout)."""

from __future__ import annotations

from rich.table import Table


def train_report(result: dict) -> Table:
    ds, model = result["dataset"], result["model"]
    t = Table(title=f"L2MU ({model['neuron']}, {model['params']:,} params) on {ds['name']}, "
                    f"test subjects {','.join(ds['test_subjects'])}", title_justify="left")
    t.add_column("stage")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for stage, m in result["stages"].items():
        for key, value in m.items():
            if isinstance(value, (dict, list)):
                continue
            t.add_row(stage, key, f"{value:.4g}" if isinstance(value, float) else str(value))
        for cls, f1 in m.get("per_class_f1", {}).items():
            t.add_row(stage, f"F1 {cls}", f"{f1:.3f}")
        stage = ""
    if "cv" in result:
        cv = result["cv"]
        t.add_row("cv", f"accuracy ({cv['folds_run']}/{cv['k']} folds)", f"{cv['accuracy_mean']:.4f} ± {cv['accuracy_std']:.4f}")
        t.add_row("cv", "macro F1", f"{cv['macro_f1_mean']:.4f} ± {cv['macro_f1_std']:.4f}")
    t.caption = f"run directory: {result['run_dir']}"
    return t
