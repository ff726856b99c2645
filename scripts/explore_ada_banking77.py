"""Chapter 03's search for a quick setting where adapters beat a frozen encoder: Banking77 intents grouped into
tasks of intents the frozen all-MiniLM-L6-v2 confuses, a linear head per task on frozen embeddings against one
adapter per task, each with its settings chosen on held-out training examples (never the test set).

    python scripts/explore_ada_banking77.py --first-layer 4 --shots 8     # one row of chapter 03's settings table

Single-threaded, a few minutes per row on a laptop core; the rows chapter 03 records came from this script.
"""
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from cl_lib import backbones, data, streams, text, train
from cl_lib.methods import ada

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--first-layer", type=int, default=4, help="adapters (and the frozen cut) from this layer on (0-5)")
p.add_argument("--shots", type=int, default=8, help="training examples per intent")
p.add_argument("--epochs", type=int, default=8, help="adapter training epochs")
args = p.parse_args()
torch.set_num_threads(1)
T, PER_TASK, HELD = 5, 15, 10  # 5 tasks of 15 intents; 10 held-out training examples per intent choose the settings
bb = backbones.create("all-MiniLM-L6-v2")
tr_set, te_set = data.load_banking77("train"), data.load_banking77("test")

# The frozen encoder's intent means (20 training examples each); greedily, the unassigned intent whose 14 nearest
# means are the most similar, with those 14, makes a task: tasks of intents the frozen embeddings confuse.
idx = streams.per_class_subset(tr_set.labels, list(range(77)), 20, 0)
h = text.cached_hidden_states(bb, tr_set, layer=0, indices=idx)
body0 = text.UpperLayers(bb, 0)
with torch.no_grad():
    z = torch.cat([body0(*h.take(torch.arange(i, min(i + 256, len(h))))) for i in range(0, len(h), 256)])
y = torch.as_tensor(tr_set.labels[idx])
mu = torch.stack([F.normalize(z[y == c].mean(0), dim=0) for c in range(77)])
sim = mu @ mu.T
left, tasks = set(range(77)), []
for _ in range(T):
    cand = sorted(left)
    s = sim[cand][:, cand]
    first = cand[int(s.topk(PER_TASK, dim=1).values.sum(1).argmax())]
    tasks.append([cand[j] for j in s[cand.index(first)].argsort(descending=True)[:PER_TASK].tolist()])
    left -= set(tasks[-1])
print("tasks:", [[tr_set.classes[c] for c in tk[:3]] + ["…"] for tk in tasks])


def task_set(ts: data.TextSet, classes: list[int], per: int, seed: int, skip: int = 0) -> text.TextTask:
    ix = streams.per_class_subset(ts.labels, classes, per, seed, skip)
    local = {c: i for i, c in enumerate(classes)}
    return text.TextTask("banking77", text.cached_hidden_states(bb, ts, layer=args.first_layer, indices=ix),
                         torch.tensor([local[int(c)] for c in ts.labels[ix]]), len(classes))


trains = [task_set(tr_set, c, args.shots, 0) for c in tasks]
helds = [task_set(tr_set, c, HELD, 0, skip=args.shots) for c in tasks]  # disjoint from the training shots
tests = [task_set(te_set, c, 40, 1) for c in tasks]
enc = ada.AdaptedEncoder(bb, args.first_layer)
acc = lambda logits, y: float((logits.argmax(1) == y).float().mean())  # noqa: E731
t0 = time.time()

z_of = [[ada.embed(enc, None, task.x) for task in sets] for sets in (trains, helds, tests)]
best = None
for lr in (0.01, 0.03, 0.1):  # the frozen encoder's heads: (lr, epochs) on held-out examples
    for epochs in (20, 40, 80):
        heads = []
        for t in range(T):
            torch.manual_seed(t)
            head = torch.nn.Linear(384, PER_TASK)
            train.fit(head, z_of[0][t], trains[t].y, epochs=epochs, batch_size=32, seed=t,
                      optimizer=train.make_optimizer(head.parameters(), "adam", lr=lr))
            heads.append(head)
        with torch.no_grad():
            held = np.mean([acc(heads[t](z_of[1][t]), helds[t].y) for t in range(T)])
            test = np.mean([acc(heads[t](z_of[2][t]), tests[t].y) for t in range(T)])
        if best is None or held > best[0]:
            best = (held, test, lr, epochs)
print(f"frozen + head: held-out {best[0] * 100:.1f}, test {best[1] * 100:.1f} (lr {best[2]}, {best[3]} epochs) "
      f"[{time.time() - t0:.0f} s]")
best_a = None
for lr in (1e-3, 3e-3, 1e-2):  # one adapter per task: its learning rate on held-out examples
    held, test = [], []
    for t in range(T):
        adapters, head = ada.new_task_modules(enc, PER_TASK, 24, init_seed=0, task=t)
        ada.train_task(enc, adapters, head, trains[t].x, trains[t].y, epochs=args.epochs, lr=lr, lr_head=0.03,
                       batch_size=32, seed=t)
        held.append(ada.accuracy(enc, adapters, head, helds[t].x, helds[t].y))
        test.append(ada.accuracy(enc, adapters, head, tests[t].x, tests[t].y))
    print(f"  adapter lr {lr}: held-out {np.mean(held) * 100:.1f}, test {np.mean(test) * 100:.1f} "
          f"[{time.time() - t0:.0f} s]", flush=True)
    if best_a is None or np.mean(held) > best_a[0]:
        best_a = (np.mean(held), np.mean(test), lr)
print(f"layers {args.first_layer + 1}-6, {args.shots} shots: adapter test {best_a[1] * 100:.1f} (lr {best_a[2]}) − "
      f"frozen + head test {best[1] * 100:.1f} = {(best_a[1] - best[1]) * 100:+.1f} points")
