"""Chapter 05's search for a quick setting where averaging matters: ColD Fusion against sequential fine-tuning through
the same contributors (the averaging switched off), probed on the seen and unseen data sets, raw and with the
sequential body moved back along its own direction to ColD's parameter distance.

    python scripts/explore_cold_settings.py --lr 7e-4 --epochs 2      # one row of chapter 05's settings table

Single-threaded; about four minutes per row of three seeds on a laptop core. The rows chapter 05 records came from
this script (layers 4-5 fused, 3 iterations × 4 contributors, 6 examples per intent, the chapter's probe).
"""
import argparse
import copy
import time

import numpy as np
import torch

from cl_lib import backbones, text
from cl_lib.methods import cold_fusion as cf

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--lr", type=float, default=7e-4, help="the contributors' body learning rate (AdamW)")
p.add_argument("--epochs", type=int, default=2, help="each contributor's epochs")
p.add_argument("--batch-size", type=int, default=32)
p.add_argument("--per-class", type=int, default=6, help="training examples per intent")
p.add_argument("--iterations", type=int, default=3)
p.add_argument("--seeds", type=int, nargs=2, default=(0, 3), metavar=("FIRST", "END"), help="seeds FIRST..END-1")
args = p.parse_args()
torch.set_num_threads(1)
layer, unseen = 4, ["kitchen_and_dining", "work", "banking77"]
bb = backbones.create("all-MiniLM-L6-v2")
names = text.intent_datasets()
seen = [n for n in names if n not in unseen]
task = lambda n, split, per, seed: text.intent_task(bb, n, split, layer=layer, per_class=per, seed=seed)  # noqa: E731
train_sets = {n: task(n, "train", args.per_class, 0) for n in seen}
shots = {n: task(n, "train", 4, 0) for n in names}
tests = {n: task(n, "test", 5 if n == "banking77" else 10, 1) for n in names}
pre = text.UpperLayers(bb, layer)
p0 = cf.body_state(pre)
fit = cf.FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr_body=args.lr, lr_head=1e-2)
probe_fit = cf.FitConfig(epochs=3, batch_size=32, lr_body=1e-4, lr_head=1e-2)
probe = lambda body: {n: cf.probe_accuracy(body, shots[n], tests[n], probe_fit, 0) for n in names}  # noqa: E731
mean = lambda e, group: np.mean([e[n] for n in group]) * 100  # noqa: E731
t0 = time.time()
pre_eval, rows = probe(pre), []
for s in range(*args.seeds):
    row = {}
    for learner, fuse in (("cold", cf.fuse_in_process), ("seq", cf.fuse_sequential)):
        body = copy.deepcopy(pre)
        cf.cold_fusion(body, lambda n: train_sets[n], seen, iterations=args.iterations, contributors=4, cfg=fit,
                       seed=s, fuse=fuse)
        row[learner], row[learner + " state"] = probe(body), cf.body_state(body)
        row[learner + " distance"] = cf.parameter_distance(row[learner + " state"], p0)
    alpha = row["cold distance"] / row["seq distance"]  # the sequential body, moved back to ColD's distance
    back = copy.deepcopy(pre)
    back.load_state_dict({k: p0[k] + alpha * (v - p0[k]) for k, v in row["seq state"].items()})
    row["seq at ColD's distance"] = probe(back)
    rows.append(row)
print(f"lr {args.lr}, {args.epochs} epochs, batch {args.batch_size}, {args.per_class} per intent, "
      f"{args.iterations} iterations, seeds {args.seeds[0]}..{args.seeds[1] - 1} ({time.time() - t0:.0f} s); "
      f"pretrained probe: seen {mean(pre_eval, seen):.1f}, unseen {mean(pre_eval, unseen):.1f}")
for gname, group in (("seen", seen), ("unseen", unseen)):
    for base in ("seq", "seq at ColD's distance"):
        gap = np.array([mean(r["cold"], group) - mean(r[base], group) for r in rows])
        print(f"  {gname:6s} ColD {np.mean([mean(r['cold'], group) for r in rows]):.1f} − {base} "
              f"{np.mean([mean(r[base], group) for r in rows]):.1f}: per seed {np.round(gap, 2).tolist()}, "
              f"mean {gap.mean():+.2f}")
print(f"  L2 distance from the pretrained body: ColD {np.mean([r['cold distance'] for r in rows]):.2f}, "
      f"sequential {np.mean([r['seq distance'] for r in rows]):.2f}")
