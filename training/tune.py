"""`har tune` as a library call: an Optuna study over the search space (training/search_space.py), scored on
subject-grouped inner folds of the training subjects only; the test subjects are fixed when the study is created,
stored in it, and never seen by a trial. See docs/tuning.md."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console

from training.atomic import atomic_path, write_text
from training.errors import ExitCode, HarError
from training.run_config import load_run_config, write_run_config
from training.run_dir import write_json
from training.search_space import UNTUNED, SearchSpace, load_space
from training.sources import DEFAULT_DATA, load_dataset
from training.splits import holdout_split, kfold_splits
from training.validate import check_folder

BEST_CONFIG = "best.toml"
TRIALS_CSV = "trials.csv"
HISTORY_PNG = "optimization_history.png"
IMPORTANCE_PNG = "param_importances.png"
STORAGE_SCHEMES = ("sqlite", "postgresql")


@dataclass
class TuneRequest:
    name: str = "l2mu"
    trials: int = 20  # trials to finish (complete or pruned) in this call, across all workers
    data: str = DEFAULT_DATA
    activities: list[str] | None = None
    subjects: list[str] | None = None
    fs_hz: float = 20.0
    window: int = 40
    hop: int = 20
    space: Path | None = None
    test_subjects: list[str] | None = None
    folds: int = 3  # inner folds of the training subjects
    epochs: int = 12  # per inner fold
    patience: int = 4
    seed: int = 42
    storage: str | None = None  # default: sqlite:///<runs_dir>/tune-<name>.db
    resume: bool = False
    workers: int = 1
    heartbeat_s: float = 30.0  # a trial whose worker stops beating for 2x this is failed and retried
    runs_dir: Path = Path("runs")


@dataclass(frozen=True)
class StudyIdentity:
    """What a study is about, stored in it: a resumed or joined study must match."""

    dataset: str
    classes: list[str]
    data_spec: str
    activities: list[str] | None
    subjects: list[str] | None
    test_subjects: list[str]
    train_subjects: list[str]
    space: dict
    budget: dict = field(default_factory=dict)


def default_storage(req: TuneRequest) -> str:
    return f"sqlite:///{(Path(req.runs_dir) / f'tune-{req.name}.db').resolve()}"


def shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str, heartbeat_s: float):
    """The Optuna RDB storage at `url`, connected; HarError on a malformed (2) or unreachable (1) URL."""
    import optuna
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise HarError(f"malformed storage URL {url!r}: {exc}") from None
    if parsed.get_backend_name() not in STORAGE_SCHEMES:
        raise HarError(f"storage URL {shown_url(url)!r}: use sqlite:///FILE or postgresql://user@host/db")
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        check_folder(Path(parsed.database).parent, "storage folder")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {"timeout": 60}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": connect}, heartbeat_interval=max(1, round(heartbeat_s)),
                grace_period=max(2, round(2 * heartbeat_s)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarError(f"cannot open storage {shown_url(url)}: {first}", ExitCode.FAILURE) from None


def _identity(req: TuneRequest, space: SearchSpace) -> StudyIdentity:
    dataset = load_dataset(req.data, req.activities, req.subjects)
    test = holdout_split(dataset.subjects, req.seed, test=req.test_subjects).test
    pool = [s for s in dataset.subjects if s not in test]
    budget = {"folds": req.folds, "epochs": req.epochs, "patience": req.patience, "seed": req.seed,
              "fs_hz": req.fs_hz, "window": req.window, "hop": req.hop}
    return StudyIdentity(dataset.name, list(dataset.classes), req.data, req.activities, req.subjects, test, pool,
                         space.to_dict(), budget)


def _check_same(stored: dict, ident: StudyIdentity, req: TuneRequest, name: str) -> None:
    """A resumed study must be about the same data, classes, test subjects, space and budget."""
    mine = json.loads(json.dumps(asdict(ident)))  # as stored: tuples become lists
    if req.test_subjects is None:  # the study's own choice
        mine["test_subjects"], mine["train_subjects"] = stored.get("test_subjects"), stored.get("train_subjects")
    if req.space is None:
        mine["space"] = stored.get("space")
    for key, what in (("dataset", "dataset"), ("classes", "class set"), ("data_spec", "data"),
                      ("activities", "activities"), ("subjects", "subjects"), ("test_subjects", "test subjects"),
                      ("train_subjects", "training subjects"), ("space", "search space"),
                      ("budget", "trial budget (folds, epochs, patience, seed, window)")):
        if stored.get(key) != mine[key]:
            raise HarError(f"study {name!r} is of another {what} ({stored.get(key)} vs {mine[key]}); "
                           "use another --name")


def _make_study(req: TuneRequest, storage, ident: StudyIdentity, worker: int = 0):
    import optuna

    sampler = optuna.samplers.TPESampler(seed=req.seed + worker, n_startup_trials=5)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)
    return optuna.load_study(study_name=req.name, storage=storage, sampler=sampler, pruner=pruner)


def prepare(req: TuneRequest, console: Console) -> tuple[object, StudyIdentity, SearchSpace]:
    """Check everything, then create (or, with --resume, load and compare) the study. Nothing is written to the
    storage before every check has passed."""
    import optuna

    if req.trials < 1 or req.workers < 1:
        raise HarError("--trials and --workers must be at least 1")
    if req.folds < 2 or req.epochs < 1 or req.patience < 1 or req.heartbeat_s <= 0:
        raise HarError("--folds must be at least 2, --epochs, --patience and --heartbeat positive")
    space = load_space(req.space)
    ident = _identity(req, space)
    if len(ident.train_subjects) < req.folds + 1:
        raise HarError(f"{len(ident.train_subjects)} training subjects are too few for {req.folds} inner folds")
    url = req.storage or default_storage(req)
    storage = open_storage(url, req.heartbeat_s)
    names = optuna.study.get_all_study_names(storage)
    if req.name in names:
        if not req.resume:
            raise HarError(f"study {req.name!r} already exists in {shown_url(url)}: --resume continues it")
        stored = optuna.load_study(study_name=req.name, storage=storage).user_attrs.get("har")
        if stored is None:
            raise HarError(f"study {req.name!r} in {shown_url(url)} was not made by har tune")
        _check_same(stored, ident, req, req.name)
        ident = StudyIdentity(**stored)
        space = space if req.space else SearchSpace(_space_from(ident.space), f"study {req.name}")
    elif req.resume:
        raise HarError(f"no study {req.name!r} in {shown_url(url)} to resume")
    else:
        study = optuna.create_study(study_name=req.name, storage=storage, direction="maximize")
        study.set_user_attr("har", asdict(ident))
        baseline = space.searched_values(load_run_config(UNTUNED))
        if baseline is not None:  # the first trial scores the untuned configuration, for comparison
            study.enqueue_trial(baseline, user_attrs={"baseline": "untuned"})
        console.print(f"study {req.name!r} created in {shown_url(url)}; test subjects {','.join(ident.test_subjects)} "
                      "are held out of every trial")
    return storage, ident, space


def _space_from(stored: dict):
    from training.search_space import Param

    return tuple(Param(name, **{k: (tuple(v) if k == "choices" else v) for k, v in spec.items()})
                 for name, spec in stored.items())


class Objective:
    """Mean best validation accuracy over the inner folds; each epoch's validation accuracy is reported to the
    pruner at step fold * epochs + epoch."""

    def __init__(self, req: TuneRequest, ident: StudyIdentity, space: SearchSpace, on_epoch=None) -> None:
        import torch

        from training.windowing import make_windows

        torch.set_num_threads(1)  # parallelism comes from --workers; small batches run best on one thread

        dataset = load_dataset(ident.data_spec, ident.activities)
        if ident.subjects:
            dataset = dataset.only_subjects(ident.subjects)
        if list(dataset.classes) != ident.classes:
            raise HarError(f"the data's classes {dataset.classes} are not the study's {ident.classes}")
        windows = make_windows(dataset, req.fs_hz, req.window, req.hop)
        pool = ident.train_subjects
        self.windows = windows.of_subjects(pool)  # the test subjects' windows are dropped here, once
        self.folds = [(s.train + s.val, s.test) for s in kfold_splits(pool, req.folds, req.seed)]
        self.req, self.ident, self.space, self.n_classes = req, ident, space, len(ident.classes)
        self.on_epoch = on_epoch or (lambda trial, fold, record: None)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, trial) -> float:
        import optuna

        from training.config import L2MUConfig
        from training.l2mu import L2MU
        from training.loop import fit
        from training.train_config import TrainConfig
        from training.normalization import Normalization
        from training.pipeline import seed_everything

        trial.set_user_attr("worker", self.worker)
        cfg = self.space.suggest(trial)
        scores = []
        for k, (train_subjects, val_subjects) in enumerate(self.folds):
            train, val = self.windows.of_subjects(train_subjects), self.windows.of_subjects(val_subjects)
            norm = Normalization.fit(train.x)
            seed_everything(self.req.seed)
            model = L2MU(L2MUConfig(n_classes=self.n_classes, **cfg.model))
            tcfg = TrainConfig(epochs=self.req.epochs, patience=self.req.patience, seed=self.req.seed,
                               **cfg.train)

            def report(record: dict, k: int = k) -> None:
                trial.report(record["val_accuracy"], k * self.req.epochs + record["epoch"] - 1)
                self.on_epoch(trial, k, record)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"fold {k + 1} epoch {record['epoch']}")

            history = fit(model, train, val, norm, tcfg, report)
            if history.interrupted:
                raise KeyboardInterrupt
            scores.append(history.best_val_accuracy)
            trial.set_user_attr("fold_val_accuracy", scores)
        return float(np.mean(scores))


def _worker(req: TuneRequest, ident: StudyIdentity, space: SearchSpace, target: int, index: int) -> None:
    """One local worker process: optimise until the study holds `target` finished trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(req.storage or default_storage(req), req.heartbeat_s)
    study = _make_study(req, storage, ident, index)
    try:
        optimize_until_settled(study, Objective(req, ident, space), target, req.heartbeat_s)
    except KeyboardInterrupt:
        pass


def optimize_until_settled(study, objective, target: int, heartbeat_s: float, callbacks: tuple = ()) -> None:
    """Optimise until the study holds `target` finished trials, then stay until no trial is left RUNNING by a dead
    worker: Optuna fails a trial whose heartbeat is older than the grace period only when some worker asks for its
    next trial, so a worker that stops as soon as the count is reached would leave a killed trial RUNNING and its
    parameters never retried. For up to one grace period (2 x heartbeat, docs/tuning.md) this worker fails stale
    trials and runs their retries; a trial still RUNNING after that has a live worker, which finishes it."""
    import optuna

    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(target, finished), *callbacks])
    deadline = time.monotonic() + 2 * heartbeat_s + 1
    while time.monotonic() < deadline:
        optuna.storages.fail_stale_trials(study)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        if optuna.trial.TrialState.WAITING in states:  # retries of failed trials
            study.optimize(objective, n_trials=states.count(optuna.trial.TrialState.WAITING), callbacks=list(callbacks))
        elif optuna.trial.TrialState.RUNNING not in states:
            return
        else:
            time.sleep(min(1.0, heartbeat_s))


def _counts(study) -> dict:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {s.name.lower(): states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                                      TrialState.RUNNING, TrialState.WAITING)}


def _status(study) -> str:
    c = _counts(study)
    try:
        best = f"best {study.best_value:.3f} (trial {study.best_trial.number})"
    except ValueError:
        best = "best -"
    return f"{best}  pruned {c['pruned']}  failed {c['fail']}  running {c['running']}"


def run_tune(req: TuneRequest, console: Console) -> dict:
    """Run the study and write its folder; returns what `--json` prints."""
    import optuna
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage, ident, space = prepare(req, console)
    study = _make_study(req, storage, ident)
    start = sum(_counts(study)[s] for s in ("complete", "pruned"))
    target = start + req.trials
    console.print(f"study {req.name!r}: {start} finished trials so far, running {req.trials} more with "
                  f"{req.workers} worker{'s' if req.workers > 1 else ''}; {req.folds} inner folds over "
                  f"{len(ident.train_subjects)} training subjects, at most {req.epochs} epochs each")
    began = time.monotonic()
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[status]}"), console=console, transient=False)
    interrupted = False
    with progress:
        task = progress.add_task("trials", total=req.trials, status="", completed=0)

        def refresh(detail: str = "") -> None:
            done = sum(_counts(study)[s] for s in ("complete", "pruned")) - start
            progress.update(task, completed=min(done, req.trials), status=f"{_status(study)}  {detail}")

        try:
            if req.workers == 1:
                def on_epoch(trial, fold, record):
                    refresh(f"[dim]trial {trial.number} fold {fold + 1}/{req.folds} epoch {record['epoch']} "
                            f"val {record['val_accuracy']:.3f}[/]")

                optimize_until_settled(study, Objective(req, ident, space, on_epoch), target, req.heartbeat_s,
                                       (lambda s, t: refresh(),))
            else:
                _run_workers(req, ident, space, target, refresh)
        except KeyboardInterrupt:
            interrupted = True
        refresh()
    result = write_outputs(req, study, ident, space, storage)
    result["elapsed_s"] = round(time.monotonic() - began, 1)
    result["interrupted"] = interrupted
    if interrupted:
        console.print(f"[yellow]interrupted: the study is kept in {result['storage']}; --resume continues it[/]")
    return result


def _run_workers(req: TuneRequest, ident: StudyIdentity, space: SearchSpace, target: int, refresh) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(req, ident, space, target, i), daemon=False)
             for i in range(req.workers)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            refresh()
            time.sleep(1.0)
    finally:
        for p in procs:
            p.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        raise HarError(f"{len(failed)} of {len(procs)} workers failed (exit codes {failed})", ExitCode.FAILURE)


def _trials_csv(study, space: SearchSpace) -> str:
    names = [p.name for p in space.params if p.searched]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "state", "value", "duration_s", "worker", "fold_val_accuracy", *names])
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else ""
        w.writerow([t.number, t.state.name, "" if t.value is None else t.value, duration,
                    t.user_attrs.get("worker", ""), t.user_attrs.get("fold_val_accuracy", ""),
                    *[t.params.get(n, "") for n in names]])
    return buf.getvalue()


def _save_plot(path: Path, plot) -> bool:
    """Save one optuna.visualization.matplotlib plot atomically; False if the study cannot draw it yet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        ax = plot()
    except (ValueError, RuntimeError, ZeroDivisionError):
        return False
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return True


def write_outputs(req: TuneRequest, study, ident: StudyIdentity, space: SearchSpace, storage) -> dict:
    """The study's folder: best.toml, trials.csv, plots, study.json; returns the `--json` result."""
    from optuna.visualization import matplotlib as ovm

    folder = Path(req.runs_dir) / f"tune-{req.name}"
    folder.mkdir(parents=True, exist_ok=True)
    counts = _counts(study)
    write_text(folder / TRIALS_CSV, _trials_csv(study, space))
    best = None
    if counts["complete"]:
        t = study.best_trial
        cfg = space.config_of_params(t.params)
        test = ",".join(ident.test_subjects)
        write_run_config(folder / BEST_CONFIG, cfg, (
            f"Best trial {t.number} of har tune study {req.name!r} ({ident.dataset}, classes "
            f"{','.join(ident.classes)}): mean inner-fold validation accuracy {t.value:.4f}.\n"
            f"Test subjects {test} were held out of every trial; to measure on them:\n"
            f"  har train --config {folder / BEST_CONFIG} --test-subjects {test}"))
        best = {"value": t.value, "trial": t.number, "params": t.params, "config": str(folder / BEST_CONFIG)}
    untuned = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline") == "untuned"
               and t.value is not None]
    plots = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        for name, plot in ((HISTORY_PNG, lambda: ovm.plot_optimization_history(study)),
                           (IMPORTANCE_PNG, lambda: ovm.plot_param_importances(study))):
            if counts["complete"] >= (2 if name == IMPORTANCE_PNG else 1) and _save_plot(folder / name, plot):
                plots.append(str(folder / name))
    result = {"study": req.name, "storage": shown_url(req.storage or default_storage(req)),
              "run_dir": str(folder), "trials": counts["complete"] + counts["pruned"], "trial_states": counts,
              "best": best, "untuned_value": untuned[0].value if untuned else None,
              "dataset": ident.dataset, "classes": ident.classes,
              "test_subjects": ident.test_subjects, "trials_csv": str(folder / TRIALS_CSV), "plots": plots}
    write_json(folder / "study.json", result)
    return result


def serve_dashboard(req: TuneRequest, host: str, port: int, console: Console) -> None:
    """optuna-dashboard on the study's storage until Ctrl-C."""
    import optuna
    from optuna_dashboard import run_server

    url = req.storage or default_storage(req)
    if not (req.storage or Path(default_storage(req).removeprefix("sqlite:///")).exists()):
        raise HarError(f"no study storage {shown_url(url)}: run har tune --name {req.name} first")
    storage = open_storage(url, req.heartbeat_s)
    if req.name not in optuna.study.get_all_study_names(storage):
        raise HarError(f"no study {req.name!r} in {shown_url(url)}")
    console.print(f"optuna-dashboard for study {req.name!r} on http://{host}:{port}/ (Ctrl-C stops)")
    run_server(storage, host=host, port=port)
