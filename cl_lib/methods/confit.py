"""ConFiT (Jie, Deng & Li, CVPR-W 2022): continual fine-tuning of a BatchNorm CNN without replay.

Two parts. (1) Per task, keep every BN's scale, shift and running variance, and the mean of every conv's
*input* (one per (row, column) phase of the conv's stride). To test an old task, restore its statistics and
rebuild each BN's running mean by cross-convolution (Xconv): the *current* conv applied to a constant
input filled with the stored input means. The conv is linear, so this is the mean of its output under
today's weights; groups, padding and stride are handled by the conv itself. (2) Hierarchical fine-tuning:
per task a fresh optimiser trains the classifier, then also the BN affine parameters, then everything.

Conv→BN pairs and conv input sizes come from one forward pass (hooks), so any timm CNN with BatchNorm works
(ResNet; EfficientNet with TF-"same" padding and depthwise convs). The book's choices: the input-mean EMA starts
at the first batch (the authors' at 0) and carries on across tasks like BN's; unpaired BNs keep stale means.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .. import train

BN = nn.modules.batchnorm._BatchNorm  # nn.BatchNorm2d and timm's BatchNormAct2d
BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class ConvBN:
    """A conv whose output feeds a BN directly, with the conv's input size and stride (its phase period)."""

    conv_name: str
    bn_name: str
    conv: nn.Conv2d
    bn: nn.Module
    in_channels: int
    input_hw: tuple[int, int]
    period: tuple[int, int]


@dataclass
class TaskStats:
    """What ConFiT keeps for one task: every BN's affine parameters and buffers, every paired conv's input means."""

    bn: dict[str, dict[str, torch.Tensor]]
    input_mean: dict[str, torch.Tensor]  # conv name -> (C_in, period_h, period_w)


def bn_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every BatchNorm of the model by name, in definition order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, BN)}


@torch.no_grad()
def find_conv_bn(model: nn.Module, example: torch.Tensor) -> list[ConvBN]:
    """Conv→BN pairs in forward order: a BN is paired with the conv whose output tensor is its input."""
    convs = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    bns = bn_layers(model)
    if not bns:
        raise ValueError("ConFiT needs a CNN with BatchNorm layers; this model has none.")
    produced, alive, in_hw, pairs, handles = {}, [], {}, [], []

    def conv_hook(name):
        def hook(mod, inputs, out):
            in_hw[name] = tuple(inputs[0].shape[-2:])
            produced[id(out)] = name
            alive.append(out)  # keep the tensor alive so its id stays unique
        return hook

    def bn_hook(name):
        def hook(mod, inputs):
            conv_name = produced.get(id(inputs[0]))
            if conv_name is not None:
                c = convs[conv_name]
                pairs.append(ConvBN(conv_name, name, c, mod, c.in_channels, in_hw[conv_name], tuple(c.stride)))
        return hook

    handles += [m.register_forward_hook(conv_hook(n)) for n, m in convs.items()]
    handles += [m.register_forward_pre_hook(bn_hook(n)) for n, m in bns.items()]
    _forward_eval(model, example, handles)
    return pairs


def _forward_eval(model: nn.Module, x: torch.Tensor, handles: list) -> None:
    """One eval-mode forward pass for its hooks' sake; the hooks are removed and the mode restored after."""
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


def phase_means(x: torch.Tensor, period: tuple[int, int]) -> torch.Tensor:
    """Per-channel mean of x (N, C, H, W) at each (row mod ph, column mod pw) phase: (C, ph, pw)."""
    ph, pw = period
    return torch.stack([torch.stack([x[:, :, p::ph, q::pw].mean((0, 2, 3)) for q in range(pw)], -1)
                        for p in range(ph)], -2)


def phase_fill(mean: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """A (1, C, H, W) input whose pixel (i, j) of channel c is mean[c, i mod ph, j mod pw]."""
    c, ph, pw = mean.shape
    return mean.repeat(1, math.ceil(hw[0] / ph), math.ceil(hw[1] / pw))[:, : hw[0], : hw[1]].unsqueeze(0)


@torch.no_grad()
def xconv_mean(conv: nn.Conv2d, input_mean: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Cross-convolution: the mean of today's conv output for an input with the stored phase means."""
    w = conv.weight
    return conv(phase_fill(input_mean.to(w.device, w.dtype), hw)).mean((0, 2, 3))


class InputMeanTracker:
    """EMA of each paired conv's per-phase input mean, updated by forward pre-hooks in train mode only."""

    def __init__(self, pairs: list[ConvBN], momentum: float = 0.1):
        self.pairs, self.momentum = pairs, momentum
        self.means: dict[str, torch.Tensor] = {}
        self.handles = [p.conv.register_forward_pre_hook(self._hook(p)) for p in pairs]

    def _hook(self, p: ConvBN) -> Callable:
        def hook(mod, inputs):
            if not mod.training:
                return
            m = phase_means(inputs[0].detach(), p.period)
            old = self.means.get(p.conv_name)
            self.means[p.conv_name] = m if old is None else (1 - self.momentum) * old + self.momentum * m
        return hook

    def remove(self) -> None:
        """Detach the hooks (the model runs as before)."""
        for h in self.handles:
            h.remove()


def snapshot(model: nn.Module, tracker: InputMeanTracker | None = None) -> TaskStats:
    """Copy every BN's scale, shift, running mean and variance, and the tracked conv-input means."""
    bn = {n: {k: getattr(m, k).detach().clone() for k in BN_KEYS} for n, m in bn_layers(model).items()}
    means = {k: v.clone() for k, v in tracker.means.items()} if tracker is not None else {}
    return TaskStats(bn, means)


@torch.no_grad()
def restore(model: nn.Module, stats: TaskStats, pairs: list[ConvBN] | None = None) -> None:
    """Load a task's BN statistics in place; with `pairs`, rebuild their running means by Xconv."""
    for name, m in bn_layers(model).items():
        if name not in stats.bn:
            raise KeyError(f"No stored statistics for BN {name!r}: the stats come from another model.")
        for k in BN_KEYS:
            getattr(m, k).copy_(stats.bn[name][k])
    for p in pairs or []:
        if p.conv_name not in stats.input_mean:
            raise KeyError(f"No stored input mean for conv {p.conv_name!r}: train with an InputMeanTracker attached.")
        p.bn.running_mean.copy_(xconv_mean(p.conv, stats.input_mean[p.conv_name], p.input_hw))


@contextmanager
def task_bn(model: nn.Module, stats: TaskStats | None, pairs: list[ConvBN] | None = None) -> Iterator[None]:
    """Within the block the model uses a task's BN statistics (stale, or Xconv with `pairs`); then its own."""
    if stats is None:
        yield
        return
    live = snapshot(model)
    restore(model, stats, pairs)
    try:
        yield
    finally:
        restore(model, live)


def storage_per_task(stats: TaskStats, recovered_means: bool = True) -> int:
    """Floats ConFiT stores per task: BN scale, shift, variance (+ mean if not recovered) and conv-input means."""
    keys = ("weight", "bias", "running_var") if recovered_means else BN_KEYS
    return sum(v[k].numel() for v in stats.bn.values() for k in keys) + sum(v.numel() for v in stats.input_mean.values())


@torch.no_grad()
def true_bn_means(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Oracle: each BN's input mean on the batch x, with every BN upstream using its own true mean too."""
    out, handles = {}, []

    def hook(name):
        def pre(mod, inputs):
            out[name] = inputs[0].mean((0, 2, 3))
            mod.running_mean.copy_(out[name])
        return pre

    live = snapshot(model)
    handles = [m.register_forward_pre_hook(hook(n)) for n, m in bn_layers(model).items()]
    try:
        _forward_eval(model, x, handles)
    finally:
        restore(model, live)
    return out


def stage(epoch: int, epochs: int) -> int:
    """Hierarchical stage of an epoch (0 classifier, 1 + BN affine, 2 everything), switched as the authors' code
    does: classifier only at epoch 0; BN joins at epoch E//5 and everything at epoch E//2, each only if that
    epoch is not 0. So E = 1 trains only the classifier, and E = 2..4 skip the BN-only stage."""
    current = 0
    for e in range(1, epoch + 1):
        if e == epochs // 5:
            current = 1
        elif e == epochs // 2:
            current = 2
    return current


def set_stage(model: nn.Module, head: nn.Module, stage_id: int) -> None:
    """Let only the parameters of a stage receive gradients: the head; + BN affine; or everything."""
    bn_params = {id(p) for m in bn_layers(model).values() for p in m.parameters(recurse=False)}
    head_params = {id(p) for p in head.parameters()}
    for p in model.parameters():
        p.requires_grad_(stage_id == 2 or id(p) in head_params or (stage_id == 1 and id(p) in bn_params))


def hierarchical_schedule(model: nn.Module, head: nn.Module, epochs: int) -> Callable[[int], None]:
    """`on_epoch` callback for `train.fit`: switch stages at the authors' epochs (see `stage`)."""
    if epochs < 1:
        raise ValueError(f"Hierarchical fine-tuning needs at least 1 epoch; got {epochs}.")
    return lambda epoch: set_stage(model, head, stage(epoch, epochs))


@dataclass
class ConFiT:
    """A network under ConFiT's bookkeeping: its conv→BN pairs, the input-mean tracker, stats per task."""

    model: nn.Module
    pairs: list[ConvBN]
    tracker: InputMeanTracker
    tasks: list[TaskStats] = field(default_factory=list)

    @classmethod
    def attach(cls, model: nn.Module, example: torch.Tensor, momentum: float = 0.1) -> "ConFiT":
        """Find the pairs from one forward pass of `example` and start tracking conv-input means."""
        pairs = find_conv_bn(model, example)
        return cls(model, pairs, InputMeanTracker(pairs, momentum))

    def end_task(self) -> None:
        """Store the statistics of the task just trained."""
        self.tasks.append(snapshot(self.model, self.tracker))

    def for_task(self, i: int, mode: str) -> ContextManager[None]:
        """BN state to test task i: 'shared' (today's), 'stale' (stored), 'xconv' (stored, means recovered).

        The task just trained uses its stored (= live) statistics, as in the authors' code."""
        if mode not in ("shared", "stale", "xconv"):
            raise ValueError(f"Unknown BN mode {mode!r}; use 'shared', 'stale' or 'xconv'.")
        if mode == "shared":
            return task_bn(self.model, None)
        if i >= len(self.tasks):
            raise IndexError(f"No statistics stored for task {i}: call end_task() after training it.")
        recover = mode == "xconv" and i < len(self.tasks) - 1
        return task_bn(self.model, self.tasks[i], self.pairs if recover else None)


def fine_tune_stream(cft: ConFiT, head: nn.Module, train_sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
                     test_sets: Sequence[tuple[torch.Tensor, torch.Tensor]], task_slices: Sequence[slice], *,
                     hierarchical: bool, epochs: int, lr: float, momentum: float, batch_size: int,
                     transform: Callable[[torch.Tensor], torch.Tensor], seed: int, device: str = "cpu",
                     modes: Sequence[str] = ("xconv",), last_modes: Sequence[str] | None = None,
                     after_task: Callable[[int], None] | None = None,
                     lr_body: float | None = None) -> dict[str, np.ndarray]:
    """Task-incremental fine-tuning of `cft.model` along a stream (naive, or `hierarchical`), a fresh SGD per
    task, statistics stored after each; returns the accuracy matrix under each BN mode in `modes` (all rows)
    and `last_modes` (the last row only). `lr_body`, where given, is the backbone's learning rate beside the head's
    `lr` (SLCA's split: a slow backbone). Chapter 4 builds its ablation ladder with it; chapter 6 compares."""
    net, n = cft.model, len(train_sets)
    head_ids = {id(p) for p in head.parameters()}

    def optimizer(m: nn.Module) -> torch.optim.Optimizer:
        if lr_body is None:
            return train.make_optimizer(m.parameters(), "sgd", lr=lr, momentum=momentum)
        params = [p for p in m.parameters() if p.requires_grad]
        return torch.optim.SGD([{"params": [p for p in params if id(p) not in head_ids], "lr": lr_body},
                                {"params": [p for p in params if id(p) in head_ids], "lr": lr}], momentum=momentum)

    R = {m: np.full((n, n), np.nan) for m in dict.fromkeys([*modes, *(last_modes or ())])}

    def end_task(t: int) -> None:  # store the statistics, then test every task so far under each BN mode
        for p in net.parameters():
            p.requires_grad_(True)
        cft.end_task()
        row_modes = last_modes if last_modes is not None and t == n - 1 else modes
        for mode in row_modes:
            for j in range(t):
                with cft.for_task(j, mode):
                    R[mode][t, j] = train.accuracy(net, *test_sets[j], classes=task_slices[j], transform=transform,
                                                   device=device)
        # The task just trained is tested with its live statistics under every mode: one evaluation serves all.
        own = train.accuracy(net, *test_sets[t], classes=task_slices[t], transform=transform, device=device)
        for mode in row_modes:
            R[mode][t, t] = own
        if after_task is not None:
            after_task(t)

    train.fine_tune_stream(net, train_sets, classes=lambda t: task_slices[t], epochs=epochs,
                           optimizer=optimizer, batch_size=batch_size, transform=transform, seed=seed, device=device,
                           on_epoch=(lambda t: hierarchical_schedule(net, head, epochs)) if hierarchical else None,
                           after_task=end_task)
    return R
