"""ColD Fusion (Don-Yehiya et al., ACL 2023): collaborative descent by repeatedly fusing fine-tuned bodies.

Each iteration, m contributors take the shared body, fine-tune it with their own head on their own data (fresh
optimiser) and send back the body; the repository averages the bodies uniformly (never the heads: their label
spaces differ) and the average is the next shared body. Only weights travel, never data.

The same loop runs in one process (a loop over contributors, for the notebook) or on PyTorch's distributed
engine, one process per contributor slot, the fusion a collective ``all_reduce`` of the body
(`cl_lib.distributed` is the command line: ``torchrun --standalone --nproc_per_node=2 -m cl_lib.distributed``).
The bodies here are the top layers of a text encoder (`cl_lib.text.UpperLayers`) fed with cached hidden states
(`cl_lib.text.TextTask`).
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..probes import embed, fit_linear
from ..text import TextTask
from ..train import minibatches

State = dict[str, torch.Tensor]


@dataclass
class FitConfig:
    """How a contributor (or an evaluator) fine-tunes: AdamW, a fresh optimiser every time; the probe's settings."""

    epochs: int  # no defaults: chapter 05's (or 06's) book.toml table sets them (`contributor_fit`)
    batch_size: int
    lr_body: float
    lr_head: float
    weight_decay: float = 0.01
    probe_steps: int = 200
    probe_lr: float = 0.05


def contributor_fit(settings: dict) -> FitConfig:
    """How contributors fine-tune, from chapter 05's settings (one source for the chapter and `cl_lib.distributed`)."""
    return FitConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr_body=settings["lr_body"],
                     lr_head=settings["lr_head"])


class Classifier(nn.Module):
    """A shared body (hidden states, mask → embedding) and a private linear head."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(h, mask))


def fit_head(z: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: FitConfig, seed: int) -> nn.Linear:
    """A linear probe on frozen embeddings (Adam, full batch): "ColD-frozen", and the head a fine-tune starts from."""
    return fit_linear(z, y, n_classes, solver="adam", steps=cfg.probe_steps, lr=cfg.probe_lr, seed=seed)


def body_embed(body: nn.Module, data: TextTask, device: str = "cpu") -> torch.Tensor:
    """Body embeddings (N, D) of a data set on the CPU (texts of similar length batched together)."""
    return embed(body, data.x, device=device, by_length=True)


def finetune(body: nn.Module, data: TextTask, cfg: FitConfig, seed: int, device: str = "cpu") -> Classifier:
    """Fine-tune `body` in place with a head started from a linear probe; fresh AdamW, this data set only."""
    body.to(device)
    head = fit_head(body_embed(body, data, device).to(device), data.y.to(device), data.n_classes, cfg, seed)
    model = Classifier(body, head)
    opt = torch.optim.AdamW([{"params": body.parameters(), "lr": cfg.lr_body},
                             {"params": head.parameters(), "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    torch.manual_seed(seed)  # dropout masks
    model.train()
    for idx in minibatches(len(data), cfg.epochs, cfg.batch_size, seed):
        h, m = data.x.take(idx)
        loss = F.cross_entropy(model(h.float().to(device), m.to(device)), data.y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def body_state(body: nn.Module) -> State:
    """A detached CPU copy of the body's parameters and buffers: what a contributor sends back."""
    return {k: v.detach().cpu().clone() for k, v in body.state_dict().items()}


def average_bodies(states: Sequence[Mapping[str, torch.Tensor]]) -> State:
    """The repository's fusion: the uniform arithmetic mean of the bodies, tensor by tensor (in float64)."""
    if not states:
        raise ValueError("average_bodies needs at least one body; got none (did any contributor run?).")
    keys = list(states[0])
    for i, s in enumerate(states):
        if list(s) != keys:
            raise ValueError(f"body {i} has other parameters than body 0; fuse only bodies of one architecture "
                             f"(heads stay with their contributors).")
    return {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype) for k in keys}


def contributor_seed(seed: int, iteration: int, name: str) -> int:
    """A contributor's seed in an iteration: the same in whichever process runs it."""
    return int(hashlib.sha256(f"{seed}/{iteration}/{name}".encode()).hexdigest()[:8], 16)


def sample_contributors(seen: Sequence[str], m: int, seed: int, iteration: int) -> list[str]:
    """The m data sets that contribute in this iteration (uniform without replacement, seeded)."""
    if not 1 <= m <= len(seen):
        raise ValueError(f"contributors per iteration must be in 1..{len(seen)} (the seen data sets); got {m}.")
    rng = np.random.default_rng([seed, iteration])
    return [seen[i] for i in sorted(rng.choice(len(seen), size=m, replace=False))]


Loader = Callable[[str], TextTask]


def local_update(shared: State, body: nn.Module, data: TextTask, cfg: FitConfig, seed: int,
                 device: str = "cpu") -> State:
    """One contributor: load the shared body, fine-tune it with its own head on its own data, return the body."""
    body.load_state_dict(shared)
    finetune(body, data, cfg, seed, device)
    return body_state(body)


def fuse_in_process(shared: State, body: nn.Module, chosen: list[str], load: Loader, cfg: FitConfig,
                    iteration: int, seed: int, device: str = "cpu",
                    on_contributor: Callable[[str, nn.Module], None] | None = None) -> State:
    """One iteration in this process: every chosen contributor in turn, then the uniform average."""
    states = []
    for name in chosen:
        states.append(local_update(shared, body, load(name), cfg, contributor_seed(seed, iteration, name), device))
        if on_contributor is not None:
            on_contributor(name, body)
    return average_bodies(states)


def fuse_sequential(shared: State, body: nn.Module, chosen: list[str], load: Loader, cfg: FitConfig,
                    iteration: int, seed: int, device: str = "cpu") -> State:
    """Averaging switched off (chapter 5's baseline): the chosen contributors fine-tune one after another, each
    from the body the previous one left; the same data and steps as `fuse_in_process`, no average."""
    for name in chosen:
        shared = local_update(shared, body, load(name), cfg, contributor_seed(seed, iteration, name), device)
    return shared


def fuse_distributed(shared: State, body: nn.Module, chosen: list[str], load: Loader, cfg: FitConfig,
                     iteration: int, seed: int, device: str = "cpu") -> State:
    """One iteration on the distributed engine: rank r runs contributors r, r+W, ...; all_reduce(SUM) / m."""
    import torch.distributed as dist

    rank, world = dist.get_rank(), dist.get_world_size()
    total = {k: torch.zeros_like(v, dtype=torch.float64, device=device) for k, v in shared.items()}
    for name in chosen[rank::world]:  # this process loads only its own contributors' data
        state = local_update(shared, body, load(name), cfg, contributor_seed(seed, iteration, name), device)
        for k in total:
            total[k] += state[k].to(device, torch.float64)
    for k in total:
        dist.all_reduce(total[k], op=dist.ReduceOp.SUM)
    return {k: (v / len(chosen)).to(shared[k].dtype).cpu() for k, v in total.items()}


def cold_fusion(body: nn.Module, load: Loader, seen: Sequence[str], *, iterations: int, contributors: int,
                cfg: FitConfig, seed: int, fuse: Callable[..., State] = fuse_in_process,
                on_iteration: Callable[[int, list[str], nn.Module], None] | None = None,
                device: str = "cpu", **fuse_kwargs) -> list[list[str]]:
    """The ColD Fusion loop: sample, fine-tune locally, average the bodies, repeat. `body` ends fused."""
    schedule = []
    for t in range(iterations):
        chosen = sample_contributors(seen, contributors, seed, t)
        work = copy.deepcopy(body)  # the contributors' scratch copy; the shared body stays untouched
        body.load_state_dict(fuse(body_state(body), work, chosen, load, cfg, t, seed, device=device, **fuse_kwargs))
        schedule.append(chosen)
        if on_iteration is not None:
            on_iteration(t + 1, chosen, body)
    return schedule


def multitask(body: nn.Module, tasks: Mapping[str, TextTask], cfg: FitConfig, epochs: int, seed: int,
              device: str = "cpu") -> nn.Module:
    """Baseline: one shared body and per-data-set heads trained jointly on the union (mixed batches)."""
    body.to(device)
    names = list(tasks)
    heads = nn.ModuleList([fit_head(body_embed(body, tasks[n], device).to(device), tasks[n].y.to(device),
                                    tasks[n].n_classes, cfg, seed + i) for i, n in enumerate(names)])
    opt = torch.optim.AdamW([{"params": body.parameters(), "lr": cfg.lr_body},
                             {"params": heads.parameters(), "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    pairs = torch.cat([torch.stack([torch.full((len(tasks[n]),), i), torch.arange(len(tasks[n]))], 1)
                       for i, n in enumerate(names)])  # every example as (data set, row)
    torch.manual_seed(seed)
    body.train()
    for idx in minibatches(len(pairs), epochs, cfg.batch_size, seed):
        chunk, loss = pairs[idx], 0.0
        for d in chunk[:, 0].unique().tolist():  # one forward per data set in the batch, one joint step
            t, rows = tasks[names[d]], chunk[chunk[:, 0] == d, 1]
            h, m = t.x.take(rows)
            loss = loss + F.cross_entropy(heads[d](body(h.float().to(device), m.to(device))), t.y[rows].to(device),
                                          reduction="sum")
        opt.zero_grad(set_to_none=True)
        (loss / len(chunk)).backward()
        opt.step()
    return body.eval()


def probe_accuracy(body: nn.Module, train: TextTask, test: TextTask, cfg: FitConfig, seed: int = 0,
                   device: str = "cpu") -> float:
    """"ColD-frozen": test accuracy of a linear probe on the frozen body."""
    head = fit_head(body_embed(body, train, device), train.y, train.n_classes, cfg, seed)
    with torch.no_grad():
        return (head(body_embed(body, test, device)).argmax(1) == test.y).float().mean().item()


def finetune_accuracy(body: nn.Module, train: TextTask, test: TextTask, cfg: FitConfig, seed: int = 0,
                      device: str = "cpu") -> float:
    """Test accuracy after a short fine-tune that starts from `body` (a copy: `body` is left unchanged)."""
    model = finetune(copy.deepcopy(body), train, cfg, seed, device)
    with torch.no_grad():
        preds = model.head(body_embed(model.body, test, device).to(device)).argmax(1).cpu()
    return (preds == test.y).float().mean().item()


def parameter_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """L2 distance between two bodies over all their tensors."""
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a) ** 0.5)
