"""ADA, Adaptive Distillation of Adapters (Ermis et al., NeurIPS 2022): many tasks at a constant size.

A frozen Transformer; per task a new bottleneck adapter and a small head; a pool of at most K adapters.
When the pool is full, a training-free transferability score (TransRate or LEEP) picks the pool adapter
that suits the new task best, and the old and the new adapter are distilled into one (Deep Model
Consolidation's double distillation, heads frozen). Inference for a task: the backbone with one adapter
and that task's head, one forward pass.

The book's interpretation (the paper has no public code): Houlsby adapters after the attention and the
FFN output projections of the adapted layers; the student starts from the old adapter and is trained on the
current task's data only; logits are centred per task head, for teachers and student alike.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import backbones, probes
from ..text import Hidden, UpperLayers, encoder_parts
from ..train import fit, make_optimizer, minibatches, n_params

POSITIONS = ("attn", "ffn")  # after the attention output projection; after the FFN output projection


class Adapter(nn.Module):
    """Houlsby bottleneck h + up(gelu(down(h))); `up` starts at zero, so a new adapter is the identity."""

    def __init__(self, dim: int, bottleneck: int):
        super().__init__()
        self.down, self.up = nn.Linear(dim, bottleneck), nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.up(F.gelu(self.down(h)))


class AdapterSet(nn.Module):
    """One task's adapter: an `Adapter` at every insertion point. What ADA trains, pools and distils."""

    def __init__(self, n_points: int, dim: int, bottleneck: int):
        super().__init__()
        self.blocks = nn.ModuleList(Adapter(dim, bottleneck) for _ in range(n_points))


class Fusion(nn.Module):
    """AdapterFusion at one point: the sub-layer output (query) attends over all adapters' outputs."""

    def __init__(self, dim: int):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, y: torch.Tensor, outs: torch.Tensor) -> torch.Tensor:  # y (..., D), outs (A, ..., D)
        w = torch.softmax((self.q(y).unsqueeze(0) * self.k(outs)).sum(-1), dim=0)
        return (w.unsqueeze(-1) * self.v(outs)).sum(0)


class AdaptedEncoder(nn.Module):
    """A frozen copy of a BERT-like text backbone; forward hooks on the attention and FFN output projections
    of layers `first_layer`.. run whatever is plugged in: nothing, one `AdapterSet`, or all of them + fusion."""

    def __init__(self, backbone: backbones.Backbone, first_layer: int, positions: Sequence[str] = POSITIONS):
        super().__init__()
        n_layers = len(encoder_parts(backbone)[1])
        if not 0 <= first_layer < n_layers or not positions or set(positions) - set(POSITIONS):
            raise ValueError(f"first_layer must be in [0, {n_layers}) and positions a non-empty subset of "
                             f"{POSITIONS}; got {first_layer}, {tuple(positions)}.")
        self.backbone = copy.deepcopy(backbone)  # the caller's backbone is never touched
        self.model = self.backbone.model.requires_grad_(False)  # registered: .to(device) moves it
        self.upper = UpperLayers(self.backbone, first_layer)  # layers first_layer.. + pooling (shared modules)
        self.first_layer, self.dim = first_layer, backbone.num_features
        self.points = [(l, p) for l in range(first_layer, n_layers) for p in positions]
        self.plugged: list[Callable[[torch.Tensor], torch.Tensor]] | None = None  # a plain list: not registered
        for i, (l, p) in enumerate(self.points):
            layer = encoder_parts(self.backbone)[1][l]
            dense = layer.attention.output.dense if p == "attn" else layer.output.dense
            dense.register_forward_hook(lambda mod, args, out, i=i: out if self.plugged is None else self.plugged[i](out))
        self.train(False)

    def train(self, mode: bool = True) -> "AdaptedEncoder":
        """The backbone stays in eval mode (no dropout): it is frozen, only what is plugged in learns."""
        super().train(mode)
        self.model.eval()
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def plug(self, adapters: AdapterSet | Sequence[AdapterSet] | None,
             fusions: Sequence[Fusion] | None = None) -> "AdaptedEncoder":
        """Run with one adapter set, none (the plain backbone), or several mixed by one `Fusion` per point."""
        if adapters is None or isinstance(adapters, AdapterSet):
            self.plugged = None if adapters is None else list(adapters.blocks)
        else:
            sets = list(adapters)
            if fusions is None or len(fusions) != len(self.points):
                raise ValueError(f"Several adapter sets need one Fusion per insertion point ({len(self.points)}).")
            self.plugged = [lambda y, i=i: fusions[i](y, torch.stack([a.blocks[i](y) for a in sets]))
                            for i in range(len(self.points))]
        return self

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings from the cached hidden states entering `first_layer`."""
        return self.upper(hidden.to(self.device), mask.to(self.device))

    def encode(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence embeddings from token ids through the whole encoder (for latency)."""
        return self.model(input_ids, mask)

    @torch.no_grad()
    def attentions(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attention maps (layers, N, heads, L, L) of the whole encoder with what is plugged now."""
        return torch.stack(self.model.encoder(input_ids=input_ids, attention_mask=mask,
                                              output_attentions=True).attentions)


@torch.no_grad()
def embed(encoder: AdaptedEncoder, adapters: AdapterSet | None, x: Hidden, batch_size: int = 256) -> torch.Tensor:
    """Sentence embeddings of `x` with `adapters` plugged in, on the encoder's device."""
    encoder.plug(adapters)
    return probes.embed(encoder, x, batch_size=batch_size).to(encoder.device)


def train_task(encoder: AdaptedEncoder, adapters: AdapterSet | None, head: nn.Linear, x: Hidden, y: torch.Tensor,
               *, epochs: int, lr: float, lr_head: float, batch_size: int = 32, seed: int = 0,
               extra: Sequence[nn.Parameter] = ()) -> float:
    """Train an adapter (or `extra` parameters: fine-tuning) with a task head by cross-entropy; last loss."""
    params = (list(adapters.parameters()) if adapters is not None else []) + list(extra)
    opt = torch.optim.Adam([{"params": head.parameters(), "lr": lr_head}] + ([{"params": params, "lr": lr}] if params else []))
    encoder.plug(adapters)
    for idx in minibatches(len(y), epochs, batch_size, seed):
        loss = F.cross_entropy(head(encoder(*x.take(idx))), y[idx].to(encoder.device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def centred_logits(z: torch.Tensor, heads: Sequence[nn.Linear]) -> torch.Tensor:
    """Every head's logits minus their per-example mean (DMC: the softmax is blind to it), concatenated."""
    return torch.cat([(lg := h(z)) - lg.mean(1, keepdim=True) for h in heads], dim=1)


def distil(encoder: AdaptedEncoder, old: AdapterSet, old_heads: Sequence[nn.Linear], new: AdapterSet,
           new_head: nn.Linear, x: Hidden, y: torch.Tensor | None = None, *, epochs: int, lr: float,
           batch_size: int = 32, seed: int = 0) -> AdapterSet:
    """Double distillation (DMC): a student adapter, starting from `old` and seen through the frozen heads,
    regresses on both teachers' centred logits (old adapter + its tasks' heads; new adapter + new head).
    Needs no labels (`y` is ignored)."""
    heads = list(old_heads) + [new_head]
    with torch.no_grad():
        target = torch.cat([centred_logits(embed(encoder, old, x), old_heads),
                            centred_logits(embed(encoder, new, x), [new_head])], dim=1)
    student = copy.deepcopy(old)
    opt = torch.optim.Adam(student.parameters(), lr=lr)  # the heads are not in it: they stay as they are
    encoder.plug(student)
    for idx in minibatches(len(x), epochs, batch_size, seed):
        loss = F.mse_loss(centred_logits(encoder(*x.take(idx)), heads), target[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return student


@torch.no_grad()
def slot_scores(how: str, encoder: AdaptedEncoder, pool: Sequence[AdapterSet], heads_of: Sequence[Sequence[nn.Linear]],
                x: Hidden, y: torch.Tensor, rng: np.random.Generator) -> list[float]:
    """How well each pool adapter (with its tasks' heads, for LEEP) transfers to the new task; 'random' draws."""
    if how == "random":
        return rng.random(len(pool)).tolist()
    if how not in ("transrate", "leep"):
        raise ValueError(f"Unknown selection {how!r}; use 'transrate', 'leep' or 'random'.")
    zs = [embed(encoder, adapters, x) for adapters in pool]
    if how == "transrate":
        return [probes.transrate(z.cpu(), y.cpu()) for z in zs]
    return [probes.leep(torch.softmax(torch.cat([h(z) for h in heads], 1), 1).cpu(), y.cpu()) for z, heads in zip(zs, heads_of)]


@torch.no_grad()
def accuracy(encoder: AdaptedEncoder, adapters: AdapterSet | None, head: nn.Linear, x: Hidden, y: torch.Tensor) -> float:
    """Task-incremental accuracy on one task: its adapter, its head, argmax over its classes."""
    return float((head(embed(encoder, adapters, x)).argmax(1).cpu() == y.cpu()).float().mean())


@dataclass
class ADAResult:
    """What an ADA run leaves: accuracy matrix, slot of each task after each step, scores, sizes."""

    R: np.ndarray
    slots: list[list[int]] = field(default_factory=list)  # slots[t][j]: the pool slot task j uses after task t
    scores: list[list[float] | None] = field(default_factory=list)
    params: list[int] = field(default_factory=list)  # adapters in the pool + heads, after each task
    pool: list[AdapterSet] = field(default_factory=list)
    heads: list[nn.Linear] = field(default_factory=list)  # each task's head at the end (a merge may replace one)


def keep_old(encoder: AdaptedEncoder, old: AdapterSet, old_heads: Sequence[nn.Linear], new: AdapterSet,
             new_head: nn.Linear, x: Hidden, y: torch.Tensor, *, head_epochs: int, lr_head: float,
             batch_size: int = 32, seed: int = 0, **_) -> tuple[AdapterSet, nn.Linear]:
    """Distillation switched off, one way (chapter 3's ablation): the slot keeps its old adapter, and the new
    task gets a fresh head trained on that adapter's embeddings of its data (as the frozen-encoder heads are
    trained), not the head it trained on its own adapter, which the kept adapter would not fit."""
    head = copy.deepcopy(new_head)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head.reset_parameters()
    z = embed(encoder, old, x)
    fit(head, z, y.to(z.device), epochs=head_epochs, batch_size=batch_size, seed=seed, device=str(z.device),
        optimizer=make_optimizer(head.parameters(), "adam", lr=lr_head))
    return old, head


def take_new(encoder: AdaptedEncoder, old: AdapterSet, old_heads: Sequence[nn.Linear], new: AdapterSet,
             new_head: nn.Linear, x: Hidden, y: torch.Tensor | None = None, **_) -> AdapterSet:
    """Distillation switched off, the other way: the slot takes the new task's adapter."""
    return new


def new_task_modules(encoder: AdaptedEncoder, n_classes: int, bottleneck: int, *, init_seed: int, task: int,
                     device: str = "cpu") -> tuple[AdapterSet, nn.Linear]:
    """Task `task`'s fresh adapter and head, each seeded on its own (`init_seed` + 1000 + task, + 2000 + task), so
    that a task's modules start the same whatever ran before them (chapters 03 and 07)."""
    torch.manual_seed(init_seed + 1000 + task)
    adapter = AdapterSet(len(encoder.points), encoder.dim, bottleneck).to(device)
    torch.manual_seed(init_seed + 2000 + task)
    return adapter, nn.Linear(encoder.dim, n_classes).to(device)


def train_adapters(encoder: AdaptedEncoder, train: Sequence[tuple[Hidden, torch.Tensor]], n_classes: Sequence[int],
                   bottleneck: int, *, init_seed: int, seed: int, device: str = "cpu",
                   **fit_settings: Any) -> tuple[list[AdapterSet], list[nn.Linear]]:
    """One adapter and head per task, each trained on its own task (`train_task`, seed `seed` + task): what ADA
    starts from, and the "one adapter per task" upper reference (chapters 03 and 07)."""
    adapters, heads = [], []
    for t, (x, y) in enumerate(train):
        a, h = new_task_modules(encoder, n_classes[t], bottleneck, init_seed=init_seed, task=t, device=device)
        train_task(encoder, a, h, x, y, seed=seed + t, **fit_settings)
        adapters.append(a), heads.append(h)
    return adapters, heads


def run_ada(encoder: AdaptedEncoder, train: Sequence[tuple[Hidden, torch.Tensor]], test: Sequence[tuple[Hidden, torch.Tensor]],
            adapters: Sequence[AdapterSet], heads: Sequence[nn.Linear], *, K: int, selection: str = "transrate",
            epochs: int, lr: float, batch_size: int = 32, seed: int = 0,
            merge: Callable[..., AdapterSet] = distil) -> ADAResult:
    """ADA over a stream, given each task's freshly trained adapter and head (step 1, shared with the
    one-adapter-per-task baseline): a pool of at most K adapters; when full, the slot with the best score
    is replaced by the `merge` (ADA: the distillation) of its adapter and the new one. A merge returns the slot's
    adapter, or (adapter, head) when it also gives the new task another head (`keep_old`)."""
    if K < 1:
        raise ValueError(f"The pool needs room for at least one adapter (K={K}).")
    T, rng, heads = len(train), np.random.default_rng(seed), list(heads)  # a merge may replace the new task's head
    res, pool, slot_of, version = ADAResult(np.full((T, T), np.nan)), [], [], []
    seen: dict[tuple[int, int, int], float] = {}  # (slot, version, task) -> accuracy: re-test only what changed
    for t in range(T):
        x, y = train[t]
        if len(pool) < K:
            pool.append(adapters[t])
            version.append(0)
            slot, scores = len(pool) - 1, None
        else:
            heads_of = [[heads[j] for j in range(t) if slot_of[j] == k] for k in range(K)]
            scores = slot_scores(selection, encoder, pool, heads_of, x, y, rng)
            slot = int(np.argmax(scores))
            merged = merge(encoder, pool[slot], heads_of[slot], adapters[t], heads[t], x, y=y, epochs=epochs, lr=lr,
                           batch_size=batch_size, seed=seed + t)
            pool[slot], heads[t] = merged if isinstance(merged, tuple) else (merged, heads[t])
            version[slot] += 1
        slot_of.append(slot)
        for j in range(t + 1):
            key = (slot_of[j], version[slot_of[j]], j)
            if key not in seen:
                seen[key] = accuracy(encoder, pool[slot_of[j]], heads[j], *test[j])
            res.R[t, j] = seen[key]
        res.slots.append(list(slot_of))
        res.scores.append(scores)
        res.params.append(n_params(pool) + n_params(heads[:t + 1]))
    res.pool, res.heads = pool, heads
    return res


def run_sequential(encoder: AdaptedEncoder, train: Sequence[tuple[Hidden, torch.Tensor]],
                   test: Sequence[tuple[Hidden, torch.Tensor]], heads: Sequence[nn.Linear], *,
                   adapters: AdapterSet | None, extra: Sequence[nn.Parameter] = (), epochs: int, lr: float,
                   lr_head: float, batch_size: int = 32, seed: int = 0) -> np.ndarray:
    """One shared adapter (or, with `extra`, the encoder's own upper layers) trained task after task; old heads kept."""
    T = len(train)
    R = np.full((T, T), np.nan)
    for t in range(T):
        train_task(encoder, adapters, heads[t], *train[t], epochs=epochs, lr=lr, lr_head=lr_head,
                   batch_size=batch_size, seed=seed + t, extra=extra)
        R[t, :t + 1] = [accuracy(encoder, adapters, heads[j], *test[j]) for j in range(t + 1)]
    return R
