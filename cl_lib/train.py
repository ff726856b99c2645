"""A short training and evaluation loop, and the accuracy matrix it fills.

Data are tensors in memory (images as uint8, or cached features); a `transform` turns a batch into the
model's input (e.g. resize and normalise). Heads are one linear layer over all classes of the stream;
`classes` (a slice of stream labels) restricts logits to the classes in play: the seen classes in
class-incremental learning, the current task's in task-incremental learning.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import config
from .streams import Stream

Transform = Callable[[torch.Tensor], torch.Tensor]


def progress(iterable, desc: str = "", total: int | None = None):
    """The iterable with a progress bar (in a notebook, a widget) while someone watches; silent in a static run
    (tests, the book build), where a bar would only add noise to the page."""
    if config.static():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator for shuffling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_optimizer(params: Iterable[nn.Parameter], name: str = "sgd", lr: float = 0.01,
                   momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """SGD (with momentum) or Adam/AdamW over the parameters that require grad."""
    params = [p for p in params if p.requires_grad]
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"Unknown optimizer {name!r}; use 'sgd', 'adam' or 'adamw'.")


def flip_and_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Light augmentation for a batch (N, C, H, W): a random horizontal flip and a random shift of up to `pad` pixels
    (a reflect-padded crop), drawn per image from torch's global generator (chapter 1's ViT training)."""
    flip = torch.rand(len(x)) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    s = x.shape[-1]
    xp = F.pad(x, (pad,) * 4, mode="reflect")
    off = torch.randint(0, 2 * pad + 1, (len(x), 2))
    return torch.stack([xp[i, :, a:a + s, b:b + s] for i, (a, b) in enumerate(off.tolist())])


def minibatches(n: int, epochs: int, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
    """Seeded shuffled mini-batch indices of n examples, epoch after epoch (the order `fit` uses)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        yield from (perm[i:i + batch_size] for i in range(0, n, batch_size))


def n_params(modules: nn.Module | Sequence[nn.Module]) -> int:
    """Number of parameters of a module or of several (chapters 3, 4, 5 and 6 count what each method adds)."""
    mods = [modules] if isinstance(modules, nn.Module) else list(modules)
    return sum(p.numel() for m in mods for p in m.parameters())


@torch.no_grad()
def count_flops(run: Callable[[], object]) -> float:
    """Floating-point operations (2 per multiply-add) of whatever `run()` computes without gradients, counted by
    torch's FlopCounterMode: the forward passes a learner makes (chapter 7 prices its text learners with it)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def forward_flops(model: nn.Module, x: torch.Tensor) -> float:
    """Floating-point operations of one forward pass of `model` on the batch `x` (`count_flops`, in eval mode);
    training is about 3× this per example (backward ≈ 2× forward). Chapter 6 prices every learner's training with
    it. (FlopCounterMode's own backward count ignores a convolution's groups: hence forward only.)"""
    was = model.training
    model.eval()
    try:
        return count_flops(lambda: model(x))
    finally:
        model.train(was)


@torch.no_grad()
def latency(forward: Callable[[], object], repeats: int = 5, cuda: bool = False) -> float:
    """Best-of-`repeats` seconds of one call of `forward` after a warm-up (the minimum is the timing least
    disturbed by other work on the machine). Chapter 3 times inference with it."""
    forward()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        forward()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.min(times))


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, optimizer: torch.optim.Optimizer,
        batch_size: int = 64, classes: slice | None = None, transform: Transform | None = None,
        seed: int = 0, device: str = "cpu", clip: float | None = None, label_smoothing: float = 0.0,
        on_epoch: Callable[[int], None] | None = None, penalty: Callable[[], torch.Tensor] | None = None
        ) -> list[float]:
    """Train `model` on (x, y) for `epochs`; return the mean loss of each epoch.

    `penalty()`, if given, is added to every batch's loss (e.g. GLAD's pull towards the pre-trained weights, chapter 1);
    the returned losses are the task's alone.

    Labels are stream labels; with `classes`, the loss sees only those logits (labels shifted to match).
    The model is left in train mode; BatchNorm statistics update as they would in any fine-tuning.
    """
    g = torch.Generator().manual_seed(seed)
    offset = classes.start if classes is not None else 0
    model.train()
    history = []
    for epoch in range(epochs):
        if on_epoch is not None:
            on_epoch(epoch)
        perm = torch.randperm(len(y), generator=g)
        total = torch.zeros((), device=device)  # summed on the device: no host sync per batch
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            if transform is not None:
                xb = transform(xb)
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            logits = model(xb)
            if classes is not None:
                logits = logits[:, classes]
            loss = F.cross_entropy(logits, yb - offset, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            (loss + penalty() if penalty is not None else loss).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            total += loss.detach() * len(idx)
        history.append(total.item() / max(len(perm), 1))
    return history


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, *, classes: slice | None = None, transform: Transform | None = None,
            batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Predicted stream labels, the argmax over `classes` (all logits if None). Eval mode, restored after."""
    was_training = model.training
    model.eval()
    offset = classes.start if classes is not None else 0
    preds = []
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        if transform is not None:
            xb = transform(xb)
        logits = model(xb.to(device))
        if classes is not None:
            logits = logits[:, classes]
        preds.append(logits.argmax(1).cpu() + offset)
    model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)



def fine_tune_stream(net: nn.Module, train_sets: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                     classes: Callable[[int], slice | None], epochs: int,
                     optimizer: Callable[[nn.Module], torch.optim.Optimizer], batch_size: int,
                     transform: Transform | None = None, seed: int = 0, device: str = "cpu",
                     on_epoch: Callable[[int], Callable[[int], None] | None] | None = None,
                     after_task: Callable[[int], None] | None = None) -> None:
    """Fine-tune `net` task after task: a fresh optimiser per task (`optimizer(net)`), the loss over the logits
    `classes(t)` (the classes seen: class-IL; the task's own: task-IL), then `after_task(t)` (evaluate, capture the
    shift, store statistics). The one loop of chapter 00's naive fine-tuning, ConFiT's ladder (chapter 04, whose
    hierarchical schedule comes in through `on_epoch(t)`) and chapter 06's fine-tuning rows."""
    for t, (x, y) in enumerate(train_sets):
        fit(net, x, y, epochs=epochs, optimizer=optimizer(net), batch_size=batch_size, classes=classes(t),
            transform=transform, seed=seed + t, device=device, on_epoch=on_epoch(t) if on_epoch else None)
        if after_task is not None:
            after_task(t)

def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs) -> float:
    """Fraction of correct predictions (see `predict` for the arguments)."""
    return (predict(model, x, **kwargs) == y).float().mean().item()


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Mean per-class accuracy (the DKVB paper's metric): each class counts the same."""
    return float(np.mean([(pred[y == c] == c).float().mean().item() for c in y.unique()]))


def prediction_row(pred: torch.Tensor, y: torch.Tensor, stream: Stream, after: int, *,
                   balanced: bool = False) -> np.ndarray:
    """Row `after` of the accuracy matrix from predictions already made on the seen tasks' test examples (stream
    labels `y`): each task's (or, `balanced`, its classes' mean) accuracy, future tasks NaN. `evaluate_row` runs
    a model; this reads predictions (a prototype learner's, DKVB's, or ones kept for a confusion figure)."""
    row = np.full(len(stream), np.nan)
    for j in range(after + 1):
        sl = stream.task_slice(j)
        m = (y >= sl.start) & (y < sl.stop)
        row[j] = balanced_accuracy(pred[m], y[m]) if balanced else float((pred[m] == y[m]).float().mean())
    return row


def evaluate_row(model: nn.Module, stream: Stream, test: list[tuple[torch.Tensor, torch.Tensor]], after: int,
                 **kwargs) -> np.ndarray:
    """Row `after` of the accuracy matrix: accuracy on each task's test data after training task `after`.

    Class-incremental: logits over all seen classes, future tasks left NaN. Task-incremental: each task's
    own logits, every task (the untrained future tasks give the forward-transfer entries).
    """
    row = np.full(len(stream), np.nan)
    for j, (x, y) in enumerate(test):
        if stream.scenario == "class":
            if j > after:
                continue
            row[j] = accuracy(model, x, y, classes=stream.seen_slice(after), **kwargs)
        else:
            row[j] = accuracy(model, x, y, classes=stream.task_slice(j), **kwargs)
    return row
