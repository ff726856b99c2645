"""Chapter 04's search for a quick setting where per-task BN statistics matter: split Tiny ImageNet, each task seen
through its own fixed photometric transform (colour gains, contrast, brightness), so that the statistics BN keeps move
from task to task. Per seed, naive and hierarchical fine-tuning as chapter 04 runs them; the final task-IL accuracy
with one shared BN, per-task BN with stale means and Xconv BN, and ConFiT (hierarchical + Xconv).

    python scripts/explore_confit_shift.py --strength 0.5            # one row of chapter 04's settings table

Two processes (one per core); about four minutes per row of three seeds (`--seeds 0 4`: the chapter's four). The
claims it prints are chapter 04's: Xconv − shared BN, Xconv − stale BN (naive FT) and ConFiT − naive FT, mean and
one-sided 95 % lower bound.
"""
import argparse
import time

import numpy as np
import torch
from torch import nn

from cl_lib import backbones, data, parallel, streams, train
from cl_lib.claims import mean_bounds
from cl_lib.methods import confit

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--strength", type=float, default=0.5, help="how far each task's photometric transform goes (0: none)")
p.add_argument("--tasks", type=int, default=5)
p.add_argument("--classes-per-task", type=int, default=5)
p.add_argument("--train-per-class", type=int, default=40)
p.add_argument("--test-per-class", type=int, default=30)
p.add_argument("--image-size", type=int, default=64)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--momentum", type=float, default=0.9)
p.add_argument("--seeds", type=int, nargs=2, default=(0, 3), metavar=("FIRST", "END"), help="seeds FIRST..END-1")
args = p.parse_args()

tr, te = data.load("tiny_imagenet", "train"), data.load("tiny_imagenet", data.test_split("tiny_imagenet"))
bb = backbones.create("tf_efficientnet_lite0")


def prep(x: torch.Tensor) -> torch.Tensor:
    return bb.preprocess(x, args.image_size)


def run(job: tuple[str, int]) -> dict[str, float]:
    variant, s = job
    st = streams.split_stream(tr.labels, te.labels, n_tasks=args.tasks, classes_per_task=args.classes_per_task,
                              seed=s, train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                              scenario="task")
    T = len(st)
    sets = {split: [st.task_data(t, d, split) for t in range(T)] for split, d in (("train", tr), ("test", te))}
    sets = {k: [(streams.apply_look(x, t, args.strength), y) for t, (x, y) in enumerate(v)] for k, v in sets.items()}
    train.seed_everything(s)
    b = backbones.create("tf_efficientnet_lite0")
    head = nn.Linear(b.num_features, st.n_classes)
    net = nn.Sequential(b.model, head)
    cft = confit.ConFiT.attach(net, prep(sets["train"][0][0][:2]))
    hierarchical = variant == "hierarchical"
    R = confit.fine_tune_stream(cft, head, sets["train"], sets["test"], [st.task_slice(t) for t in range(T)],
                                hierarchical=hierarchical, epochs=args.epochs, lr=args.lr, momentum=args.momentum,
                                batch_size=args.batch_size, transform=prep, seed=s, modes=(),
                                last_modes=("xconv",) if hierarchical else ("shared", "stale", "xconv"))
    cft.tracker.remove()
    return {m: float(np.mean(r[-1])) * 100 for m, r in R.items()}


def gap(name: str, a: list[float], b: list[float]) -> None:
    d = np.array(a) - np.array(b)
    bound = mean_bounds(d)[2] if len(d) > 1 else np.nan
    print(f"  {name:28s} {d.mean():+6.2f} points (bound {bound:+6.2f}; per seed {', '.join(f'{v:+.1f}' for v in d)})")


t0 = time.time()
seeds = list(range(*args.seeds))
jobs = [(v, s) for s in seeds for v in ("naive", "hierarchical")]
out = dict(zip(jobs, parallel.pmap(run, jobs)))
naive = {m: [out["naive", s][m] for s in seeds] for m in ("shared", "stale", "xconv")}
confit_acc = [out["hierarchical", s]["xconv"] for s in seeds]
print(f"strength {args.strength}, {args.tasks} tasks × {args.classes_per_task} classes, {args.train_per_class} "
      f"train/class, {args.image_size} px, {args.epochs} epochs, batch {args.batch_size}, lr {args.lr}, momentum "
      f"{args.momentum}, seeds {seeds} ({time.time() - t0:.0f} s)")
for m, v in naive.items():
    print(f"  naive FT, {m:6s} BN: {np.mean(v):5.1f} %")
print(f"  ConFiT (hierarchical, Xconv): {np.mean(confit_acc):5.1f} %")
gap("Xconv − shared BN", naive["xconv"], naive["shared"])
gap("Xconv − stale BN", naive["xconv"], naive["stale"])
gap("ConFiT − naive FT", confit_acc, naive["shared"])
