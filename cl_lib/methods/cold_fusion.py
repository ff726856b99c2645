"""ColD Fusion (Don-Yehiya et al., ACL 2023): collaborative descent by repeatedly fusing fine-tuned bodies.

Each iteration, m contributors take the shared body, fine-tune it with their own head on their own data (fresh
optimiser) and send back the body; the repository averages the bodies uniformly (never the heads: their label
spaces differ) and the average is the next shared body. Only weights travel, never data.

The same loop runs in one process (a loop over contributors, for the notebook) or on PyTorch's distributed
engine, one process per contributor slot, the fusion a collective ``all_reduce`` of the body:

    torchrun --standalone --nproc_per_node=2 -m cl_lib.methods.cold_fusion --out fused.pt

The bodies here are the top layers of a text encoder (`cl_lib.text.UpperLayers`) fed with cached hidden states.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import os
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

State = dict[str, torch.Tensor]
DOMAINS = ["auto_and_commute", "banking", "credit_cards", "home", "kitchen_and_dining", "meta", "small_talk",
           "travel", "utility", "work"]  # CLINC150's 10 domains, 15 intents each


@dataclass
class TaskData:
    """One data set: hidden states entering the body (N, L, D), their mask (N, L), labels 0..C-1."""

    name: str
    h: torch.Tensor
    mask: torch.Tensor
    y: torch.Tensor
    n_classes: int

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class FitConfig:
    """How a contributor (or an evaluator) fine-tunes: AdamW, a fresh optimiser every time; the probe's settings."""

    epochs: int = 2
    batch_size: int = 32
    lr_body: float = 1e-4
    lr_head: float = 1e-2
    weight_decay: float = 0.01
    probe_steps: int = 200
    probe_lr: float = 0.05


class Classifier(nn.Module):
    """A shared body (hidden states, mask → embedding) and a private linear head."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(h, mask))


def batches(data: TaskData, batch_size: int, order: torch.Tensor | None = None,
            device: str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(h, mask, y) batches, padding trimmed to the batch's longest example (masked tokens change nothing)."""
    order = torch.arange(len(data)) if order is None else order
    for i in range(0, len(order), batch_size):
        idx = order[i:i + batch_size]
        m = data.mask[idx]
        L = int(m.sum(1).max())
        yield data.h[idx, :L].float().to(device), m[:, :L].to(device), data.y[idx].to(device)


@torch.no_grad()
def embed(body: nn.Module, data: TaskData, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Body embeddings (N, D) of a data set, in eval mode (restored after), on the CPU."""
    was = body.training
    body.eval()
    order = torch.argsort(data.mask.sum(1), stable=True)  # similar lengths together: less padding to run
    out = torch.cat([body(h, m).float().cpu() for h, m, _ in batches(data, batch_size, order, device)])
    body.train(was)
    return out[torch.argsort(order)]


def fit_probe(z: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: FitConfig, seed: int) -> nn.Linear:
    """Logistic regression on frozen embeddings (full batch, Adam): the linear probe, and a head's start."""
    torch.manual_seed(seed)
    head = nn.Linear(z.shape[1], n_classes).to(z.device)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.probe_lr)
    for _ in range(cfg.probe_steps):
        loss = F.cross_entropy(head(z), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return head


def finetune(body: nn.Module, data: TaskData, cfg: FitConfig, seed: int, device: str = "cpu") -> Classifier:
    """Fine-tune `body` in place with a head started from a linear probe; fresh AdamW, this data set only."""
    body.to(device)
    head = fit_probe(embed(body, data, device=device).to(device), data.y.to(device), data.n_classes, cfg, seed)
    model = Classifier(body, head)
    opt = torch.optim.AdamW([{"params": body.parameters(), "lr": cfg.lr_body},
                             {"params": head.parameters(), "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    torch.manual_seed(seed)  # dropout masks
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(cfg.epochs):
        for h, m, y in batches(data, cfg.batch_size, torch.randperm(len(data), generator=g), device):
            loss = F.cross_entropy(model(h, m), y)
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


Loader = Callable[[str], TaskData]


def local_update(shared: State, body: nn.Module, data: TaskData, cfg: FitConfig, seed: int,
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


def multitask(body: nn.Module, tasks: Mapping[str, TaskData], cfg: FitConfig, epochs: int, seed: int,
              device: str = "cpu") -> nn.Module:
    """Baseline: one shared body and per-data-set heads trained jointly on the union (mixed batches)."""
    body.to(device)
    names = list(tasks)
    heads = nn.ModuleList([fit_probe(embed(body, tasks[n], device=device).to(device), tasks[n].y.to(device),
                                     tasks[n].n_classes, cfg, seed + i) for i, n in enumerate(names)])
    opt = torch.optim.AdamW([{"params": body.parameters(), "lr": cfg.lr_body},
                             {"params": heads.parameters(), "lr": cfg.lr_head}], weight_decay=cfg.weight_decay)
    pairs = torch.cat([torch.stack([torch.full((len(tasks[n]),), i), torch.arange(len(tasks[n]))], 1)
                       for i, n in enumerate(names)])  # every example as (data set, row)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    body.train()
    for _ in range(epochs):
        order = pairs[torch.randperm(len(pairs), generator=g)]
        for i in range(0, len(order), cfg.batch_size):
            chunk, loss = order[i:i + cfg.batch_size], 0.0
            for d in chunk[:, 0].unique().tolist():  # one forward per data set in the batch, one joint step
                t, rows = tasks[names[d]], chunk[chunk[:, 0] == d, 1]
                h, m, y = next(batches(TaskData(t.name, t.h[rows], t.mask[rows], t.y[rows], t.n_classes),
                                       len(rows), device=device))
                loss = loss + F.cross_entropy(heads[d](body(h, m)), y, reduction="sum")
            opt.zero_grad(set_to_none=True)
            (loss / len(chunk)).backward()
            opt.step()
    return body.eval()


def probe_accuracy(body: nn.Module, train: TaskData, test: TaskData, cfg: FitConfig, seed: int = 0,
                   device: str = "cpu") -> float:
    """"ColD-frozen": test accuracy of a linear probe on the frozen body."""
    head = fit_probe(embed(body, train, device=device), train.y, train.n_classes, cfg, seed)
    with torch.no_grad():
        return (head(embed(body, test, device=device)).argmax(1) == test.y).float().mean().item()


def finetune_accuracy(body: nn.Module, train: TaskData, test: TaskData, cfg: FitConfig, seed: int = 0,
                      device: str = "cpu") -> float:
    """Test accuracy after a short fine-tune that starts from `body` (a copy: `body` is left unchanged)."""
    model = finetune(copy.deepcopy(body), train, cfg, seed, device)
    with torch.no_grad():
        preds = model.head(embed(model.body, test, device=device).to(device)).argmax(1).cpu()
    return (preds == test.y).float().mean().item()


def parameter_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """L2 distance between two bodies over all their tensors."""
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a) ** 0.5)


# Data sets as contributors: CLINC150 domains and Banking77, through the cached lower layers of MiniLM.

def select(labels: torch.Tensor, classes: Sequence[int], per_class: int, seed: int) -> np.ndarray:
    """Sorted indices of `per_class` examples of each class (seeded; a smaller `per_class` gives a subset)."""
    rng = np.random.default_rng(seed)
    y = labels.numpy()
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes]))


def text_task(backbone, name: str, split: str, layer: int, per_class: int, seed: int,
              device: str = "cpu") -> TaskData:
    """A data set (`banking77` or a CLINC150 domain) as cached hidden states entering layer `layer`."""
    from .. import data as D
    from ..text import cached_hidden_states

    if name not in DOMAINS + ["banking77"]:
        raise ValueError(f"unknown data set {name!r}; use 'banking77' or a CLINC150 domain: {', '.join(DOMAINS)}.")
    if name == "banking77":
        ts = D.load_banking77("test" if split == "test" else "train")
        classes = list(range(len(ts.classes)))
    else:
        ts = D.load_clinc150(split)
        classes = ts.groups[name]
    idx = select(ts.labels, classes, per_class, seed)
    h, mask = cached_hidden_states(backbone, ts, dataset="banking77" if name == "banking77" else "clinc150",
                                   split=split, layer=layer, indices=idx, device=device)
    remap = {c: i for i, c in enumerate(classes)}
    return TaskData(name, h, mask, torch.tensor([remap[int(c)] for c in ts.labels[idx]]), len(classes))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: the loop over real data sets, distributed when launched by torchrun (WORLD_SIZE set)."""
    p = argparse.ArgumentParser(description="ColD Fusion of all-MiniLM-L6-v2's top layers over CLINC150 domains "
                                            "and Banking77; under torchrun, one process per contributor slot.")
    p.add_argument("--datasets", default=",".join(DOMAINS[:8]), help="comma-separated seen data sets")
    p.add_argument("--out", default="fused_body.pt")
    for flag, default in [("iterations", 1), ("contributors", 4), ("layer", 4), ("train-per-class", 10),
                          ("epochs", 2), ("batch-size", 32), ("lr-body", 1e-4), ("lr-head", 1e-2), ("seed", 0)]:
        p.add_argument(f"--{flag}", type=type(default), default=default)
    args = p.parse_args(argv)

    from .. import backbones
    from ..text import UpperLayers

    distributed, device = "WORLD_SIZE" in os.environ, "cpu"
    if distributed:
        import torch.distributed as dist
        if torch.cuda.device_count() >= int(os.environ["LOCAL_WORLD_SIZE"]):  # NCCL, one GPU per process
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    bb = backbones.create("all-MiniLM-L6-v2")
    body = UpperLayers(bb, args.layer).to(device)
    cfg = FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr_body=args.lr_body, lr_head=args.lr_head)
    load = lambda name: text_task(bb, name, "train", args.layer, args.train_per_class, args.seed)  # noqa: E731
    schedule = cold_fusion(body, load, args.datasets.split(","), iterations=args.iterations,
                           contributors=args.contributors, cfg=cfg, seed=args.seed, device=device,
                           fuse=fuse_distributed if distributed else fuse_in_process)
    if int(os.environ.get("RANK", 0)) == 0:
        torch.save({"body": body_state(body), "schedule": schedule, "args": vars(args)}, args.out)
        print(f"[cold_fusion] {'distributed' if distributed else 'in-process'}: {len(schedule)} iteration(s) "
              f"{schedule}, fused body saved to {args.out}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
