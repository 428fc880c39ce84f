"""Data sources, selected by a spec string: `seglearn` (bundled), `wisdm:PATH`, `csv:DIR`."""

from __future__ import annotations

from pathlib import Path

from training.errors import HarError
from training.recordings import Dataset

DEFAULT_DATA = "seglearn"


def load_dataset(spec: str, activities: list[str] | None = None, subjects: list[str] | None = None) -> Dataset:
    """Load the dataset named by `spec`; `activities` selects WISDM codes or CSV/seglearn labels, `subjects` (if
    given) the subjects to keep (an unknown one is an error naming the data's subjects)."""
    dataset = _load(spec, activities)
    if subjects:
        unknown = sorted(set(subjects) - set(dataset.subjects))
        if unknown:
            raise HarError(f"unknown subjects {','.join(unknown)}: the data has {','.join(dataset.subjects)}")
        dataset = dataset.only_subjects(subjects)
    return dataset


def _load(spec: str, activities: list[str] | None) -> Dataset:
    kind, _, arg = spec.partition(":")
    if kind == "seglearn" and not arg:
        from training.sources.seglearn_watch import load_seglearn_watch

        dataset = load_seglearn_watch()
    elif kind == "wisdm" and arg:
        from training.sources.wisdm import load_wisdm

        return load_wisdm(_existing(arg), activities)
    elif kind == "csv" and arg:
        from training.sources.csv_recordings import load_csv_dir

        dataset = load_csv_dir(_existing(arg))
    else:
        raise HarError(f"unknown data source {spec!r}: use 'seglearn', 'wisdm:PATH' or 'csv:DIR'")
    return select_classes(dataset, activities) if activities else dataset


def select_classes(dataset: Dataset, classes: list[str]) -> Dataset:
    """Keep only recordings whose label is in `classes`, in that order."""
    unknown = [c for c in classes if c not in dataset.classes]
    if unknown:
        raise HarError(f"unknown activities {','.join(unknown)}: {dataset.name} has {','.join(dataset.classes)}")
    recs = [r for r in dataset.recordings if r.label in classes]
    return Dataset(dataset.name, recs, list(classes), dataset.skipped_lines, list(dataset.notes))


def _existing(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise HarError(f"data path not found: {p}")
    if not p.is_dir():
        raise HarError(f"data path is not a directory: {p}")
    return p
