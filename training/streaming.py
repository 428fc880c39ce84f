"""Streaming training of the same L2MU (`har train --stream`, docs/streaming.md): one network state carried through
whole recordings, never reset inside a stream, a decision at every hop.

The maths of `L2MU.step` is unchanged; what changes is where the state starts and where the loss is taken:

- A stream is one subject's recordings resampled to the model rate and joined end to end (activities interleaved), so
  the network also sees activity changes without a reset. Training cuts streams into stretches of `stretch` samples
  (default 6 s, three windows); each stretch starts from the zero state (a stream start) and carries its state through
  every step of it, with full BPTT over the stretch. The fused forward (`L2MU.trace`, training/l2mu_fused.py) runs
  a whole stretch from the zero state with no reset, which is exactly a stream; it takes no state in or out, so
  truncated BPTT (state detached between chunks) would need the per-step `step` path, 10-50x slower on this machine,
  and is not used. Evaluation runs whole held-out streams through `trace` the same way.
- The decision at sample t is a ring buffer of output spike counts over the last `window` steps:
  n_c[t] = sum_{k=t-window+1..t} s_o,c[k], class = argmax_c n_c[t]. A ring buffer rather than a leaky integrator
  because it is the windowed model's decision rule unchanged (same counts, same scale, same contract rule), its
  memory ends exactly `window` samples after a change (a leaky integrator never forgets a past activity fully, so
  its latency after a change depends on how long the previous activity lasted), and it is exact in integers.
- The loss is the cross-entropy of n[t] against the activity at t, at every hop t (t + 1 a multiple of hop) from
  t + 1 >= warmup on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from training.augment import augment
from training.l2mu import L2MU
from training.loop import History, run_epochs
from training.metrics import HeldOutMetrics, classification_metrics, workload_metrics
from training.normalization import Normalization
from training.recordings import Dataset
from training.train_config import TrainConfig
from training.windowing import resample


@dataclass(frozen=True)
class StreamSettings:
    stretch: int = 120  # samples per training stretch, each from the zero state (6 s at 20 Hz)
    warmup: int = 0  # first decision with a loss at t + 1 >= warmup; 0: one window
    finetune_epochs: int = 12  # stream epochs after the windowed training (0: the windowed weights as they are)
    finetune_lr: float = 5e-4
    finetune_patience: int = 6

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Stream:
    """One subject's recordings joined end to end: x (n, 6) raw SI at the model rate, y (n,) class per sample,
    changes: sample indices where a new recording starts (0 included)."""

    x: np.ndarray
    y: np.ndarray
    changes: list[int]
    subject: str


def interleaved(labels: list[str]) -> list[int]:
    """Indices of `labels` in round-robin order over their classes, so consecutive recordings differ where they can."""
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    order, queues = [], list(groups.values())
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    return order


def build_streams(dataset: Dataset, fs_hz: float, subjects: list[str],
                  rng: np.random.Generator | None = None) -> list[Stream]:
    """One stream per subject: its recordings (shuffled by `rng` first, if given) interleaved by activity."""
    streams = []
    for subject in subjects:
        recs = [r for r in dataset.recordings if r.subject == subject]
        if rng is not None:
            recs = [recs[i] for i in rng.permutation(len(recs))]
        recs = [recs[i] for i in interleaved([r.label for r in recs])]
        parts = [resample(r.samples, r.fs_hz, fs_hz) for r in recs]
        if not parts:
            continue
        starts = np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist()
        y = np.concatenate([np.full(len(p), dataset.classes.index(r.label), np.int64) for p, r in zip(parts, recs)])
        streams.append(Stream(np.concatenate(parts), y, starts, subject))
    return streams


def stretches(streams: list[Stream], length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping stretches (N, length, 6) and their labels (N, length), from a random offset in each stream."""
    xs, ys = [], []
    for s in streams:
        offset = int(rng.integers(0, max(1, min(length, len(s.y) - length + 1))))
        for a in range(offset, len(s.y) - length + 1, length):
            xs.append(s.x[a : a + length])
            ys.append(s.y[a : a + length])
    return np.stack(xs), np.stack(ys)


def decision_steps(n: int, hop: int, first: int) -> np.ndarray:
    """The steps t in [0, n) with a decision: (t + 1) % hop == 0 and t + 1 >= first (one window, or the warm-up)."""
    t = np.arange(n)
    return np.flatnonzero(((t + 1) % hop == 0) & (t + 1 >= max(first, 1)))


def window_counts(history: torch.Tensor, outs: torch.Tensor, window: int) -> torch.Tensor:
    """n[t] = sum of the last `window` output spikes at each step of `outs` (B, n, C), given the `window` - 1
    steps before it in `history` (B, window - 1, C): the ring buffer of counts."""
    full = torch.cat([history, outs], 1)
    return full.unfold(1, window, 1).sum(-1)  # (B, n, C)


def stream_counts(model: L2MU, xs: list[np.ndarray], window: int, record: bool = False
                  ) -> tuple[list[np.ndarray], dict[str, list[np.ndarray]]]:
    """Ring-buffer counts n[t] (n, C) at every sample of each normalised stream x (n, 6), all streams stepped side by
    side (zero padded at the end, which later steps only); the decision at t is their argmax. With `record`, every
    population's spikes (n, N) per stream too."""
    model.eval()
    n = max(len(x) for x in xs)
    batch = np.zeros((len(xs), n, xs[0].shape[-1]), np.float32)
    for i, x in enumerate(xs):
        batch[i, : len(x)] = x
    with torch.no_grad():
        rec, _ = model.trace(torch.from_numpy(batch))  # from the zero state, never reset: a stream
        outs = rec["out"]
        counts = window_counts(outs.new_zeros(len(xs), window - 1, outs.shape[-1]), outs, window).numpy()
    return ([c[: len(x)] for c, x in zip(counts, xs)],
            {pop: [v[i, : len(x)].numpy() for i, x in enumerate(xs)] for pop, v in rec.items()} if record else {})


def _score_at_hops(model: L2MU, streams: list[Stream], norm: Normalization, window: int,
                   hop: int) -> tuple[float, float]:
    """Cross-entropy and accuracy of the decisions at every hop of the streams."""
    counts, _ = stream_counts(model, [norm.apply(s.x) for s in streams], window)
    at = [decision_steps(len(s.y), hop, window) for s in streams]
    n = torch.from_numpy(np.concatenate([c[a] for c, a in zip(counts, at)]))
    y = torch.from_numpy(np.concatenate([s.y[a] for s, a in zip(streams, at)]))
    return F.cross_entropy(n, y).item(), (n.argmax(1) == y).float().mean().item()


def fit_stream(model: L2MU, train: list[Stream], val: list[Stream], norm: Normalization, cfg: TrainConfig,
               settings: StreamSettings, window: int, hop: int,
               on_epoch: Callable[[dict], None] = lambda e: None,
               on_best: Callable[[L2MU], None] = lambda m: None, start_val_accuracy: float = -1.0) -> History:
    """BPTT over stretches, in place; early stop on the validation streams' accuracy at every hop. `cfg.batch_size`
    counts decisions, as in windowed training: a batch holds batch_size // (decisions per stretch) stretches, at
    least one. On return `model` holds the best-validation weights; Ctrl-C stops and keeps the best."""
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    at = torch.from_numpy(decision_steps(settings.stretch, hop, settings.warmup or window))
    per_batch = max(1, cfg.batch_size // max(len(at), 1))

    def train_epoch(opt: torch.optim.Optimizer) -> tuple[float, float]:
        xs, ys = stretches(train, settings.stretch, rng)
        order = torch.randperm(len(xs), generator=gen).numpy()
        loss_sum, correct, decisions = 0.0, 0, 0
        for i in range(0, len(xs), per_batch):
            idx = order[i : i + per_batch]
            x = augment(xs[idx], rng, cfg.augment_deg) if cfg.augment_deg > 0 else xs[idx]
            x, y = torch.from_numpy(norm.apply(x)), torch.from_numpy(ys[idx])
            outs = model.trace(x)[0]["out"]  # (B, stretch, C), the stretch from the zero state, never reset
            counts = window_counts(outs.new_zeros(len(idx), window - 1, outs.shape[-1]), outs, window)[:, at]
            target = y[:, at]
            loss = F.cross_entropy(counts.flatten(0, 1), target.flatten())
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * target.numel()
            correct += (counts.argmax(-1) == target).sum().item()
            decisions += target.numel()
        return loss_sum / max(decisions, 1), correct / max(decisions, 1)

    return run_epochs(model, cfg, train_epoch, lambda: _score_at_hops(model, val, norm, window, hop), on_epoch,
                      on_best, start_val_accuracy)


def evaluate_stream(model: L2MU, streams: list[Stream], norm: Normalization, classes: list[str], window: int,
                    hop: int) -> tuple[HeldOutMetrics, dict]:
    """Metrics of the decisions at every hop (from the first full window) of the held-out streams, the accuracy at
    every sample too, and workload per `window` steps; also the spikes of the first window (for the raster)."""
    zs = [norm.apply(s.x) for s in streams]
    counts, rec = stream_counts(model, zs, window, record=True)
    y_hop, p_hop, y_all, p_all, xs, spikes = [], [], [], [], [], {}
    for i, (s, z, n) in enumerate(zip(streams, zs, counts)):
        pred = n.argmax(-1)
        at = decision_steps(len(s.y), hop, window)
        y_hop.append(s.y[at])
        p_hop.append(pred[at])
        y_all.append(s.y[window - 1 :])
        p_all.append(pred[window - 1 :])
        k = len(s.y) // window  # the stream as consecutive pieces of `window` steps, for per-window workload
        xs.append(z[: k * window].reshape(k, window, -1))
        for pop, v in rec.items():
            spikes.setdefault(pop, []).append(v[i][: k * window].reshape(k, window, -1))
    spikes = {pop: np.concatenate(v) for pop, v in spikes.items()}
    metrics = HeldOutMetrics.of(
        classification_metrics(np.concatenate(y_hop), np.concatenate(p_hop), classes),
        workload_metrics(np.concatenate(xs), spikes, model.fan_out(), model.cfg.pop_per_channel),
        accuracy_every_sample=float((np.concatenate(y_all) == np.concatenate(p_all)).mean()),
        steps_per_decision=hop)  # one lane: one step per sample
    return metrics, {"label": int(streams[0].y[0]), "spikes": {pop: s[0] for pop, s in spikes.items()}}


def train_stream_fold(req, dataset: Dataset, windows, split, label: str, console, on_best=None):
    """`train_fold` for `--stream`, in two phases (docs/streaming.md, "Training"): the windowed training of
    `train_fold` on the training subjects' windows, then a fine-tune on their streams (BPTT over stretches, early
    stop on the validation subjects' streams; an epoch must beat the windowed weights on them to replace them).
    Returns (model, norm, history of both phases, train config, held-out streams)."""
    from training.errors import HarError
    from training.pipeline import _progress, train_fold

    rng = np.random.default_rng(req.seed)
    train, val, test = (build_streams(dataset, req.fs_hz, s, rng if s is split.train else None)
                        for s in (split.train, split.val, split.test))
    settings = StreamSettings(**req.stream_settings)
    too_short = ([s.subject for s in train if len(s.y) < settings.stretch]
                 + [s.subject for s in val + test if len(s.y) < req.window])
    if not (train and val and test) or too_short:
        raise HarError(f"{label}: training streams need one stretch ({settings.stretch} samples), held-out streams "
                       f"one window ({req.window}); too short: {','.join(too_short) or 'a split is empty'}")
    model, norm, windowed, tcfg, _ = train_fold(req, windows, split, dataset.classes, f"{label}: windows", console,
                                                on_best)
    if windowed.interrupted or windowed.best_epoch < 1 or settings.finetune_epochs < 1:
        return model, norm, windowed, tcfg, test
    with _progress(console) as progress:
        task = progress.add_task(f"{label}: streams", total=settings.finetune_epochs, status="")

        def on_epoch(r: dict) -> None:
            progress.update(task, advance=1, status=f"loss {r['train_loss']:.3f}  val acc {r['val_accuracy']:.3f}")

        streamed, start = finetune_on_streams(model, train, val, norm, settings, tcfg, req.window, req.hop, on_epoch,
                                              on_best or (lambda m: None))
    return model, norm, _joined(windowed, streamed, start), tcfg, test


def finetune_on_streams(model: L2MU, train: list[Stream], val: list[Stream], norm: Normalization,
                        settings: StreamSettings, tcfg: TrainConfig, window: int, hop: int,
                        on_epoch: Callable[[dict], None] = lambda e: None,
                        on_best: Callable[[L2MU], None] = lambda m: None) -> tuple[History, float]:
    """The second phase of `har train --stream`, in place on a windowed model: `settings.finetune_epochs` of
    `fit_stream` at `settings.finetune_lr` (batch size, seed and augmentation of `tcfg`); an epoch replaces the
    starting weights only if it beats their accuracy at every hop of the validation streams. Returns the phase's
    history and that starting accuracy."""
    start = _score_at_hops(model, val, norm, window, hop)[1]
    fcfg = TrainConfig(settings.finetune_epochs, tcfg.batch_size, settings.finetune_lr, settings.finetune_patience,
                       tcfg.seed, tcfg.augment_deg)
    return fit_stream(model, train, val, norm, fcfg, settings, window, hop, on_epoch, on_best, start), start


def _joined(windowed: History, streamed: History, start: float) -> History:
    """Both phases as one history: the stream epochs numbered on after the windowed ones (`phase` on each), the best
    epoch and validation accuracy those of the stream phase (the windowed best epoch, scored on the validation
    streams, when no stream epoch beat it)."""
    n = len(windowed.epochs)
    epochs = ([{**e, "phase": "windows"} for e in windowed.epochs]
              + [{**e, "epoch": n + e["epoch"], "phase": "streams"} for e in streamed.epochs])
    best = n + streamed.best_epoch if streamed.best_epoch > 0 else windowed.best_epoch
    return History(epochs, best, max(start, streamed.best_val_accuracy), streamed.interrupted, streamed.early_stopped)
